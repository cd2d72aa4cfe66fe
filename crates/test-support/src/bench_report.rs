//! The figures of one benchmark run and their JSON file:
//! `{"name", "results": [{"metric", "value", "unit", "target", "met"}], "notes": [...]}`.

use serde_json::{json, Value};

pub struct Report {
    name: String,
    results: Vec<Value>,
    notes: Vec<String>,
}

impl Report {
    pub fn new(name: &str) -> Report {
        Report {
            name: name.into(),
            results: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A figure checked against an issue-6 target (`met` is `None` for information only).
    pub fn figure(
        &mut self,
        metric: &str,
        value: f64,
        unit: &str,
        target: Option<&str>,
        met: Option<bool>,
    ) {
        let value = (value * 1000.0).round() / 1000.0;
        self.results.push(json!({
            "metric": metric,
            "value": value,
            "unit": unit,
            "target": target,
            "met": met,
        }));
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Writes `$CARGO_TARGET_DIR/bench/<name>.json` (default `target/bench/`).
    pub fn write(&self) {
        let dir = crate::target_dir().join("bench");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.json", self.name));
        let doc = json!({"name": self.name, "results": self.results, "notes": self.notes});
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        println!("\nwritten to {}", path.display());
    }
}
