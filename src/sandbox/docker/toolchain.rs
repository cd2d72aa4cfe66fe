//! What a Docker runner tells build records about its toolchain: the image's ID, asked
//! every time (one inspect), and `perry --version`, run once per image ID. An image ID
//! names the image's content, so its compiler's answer cannot change; a rebuilt or
//! updated image has a new ID and is asked again. This keeps a container run out of
//! every job.

use std::sync::Mutex;

/// Image IDs kept with their `perry --version` (a worker uses one or two images).
const KEEP: usize = 16;

/// `perry --version` per image ID, the newest last.
#[derive(Default)]
pub(crate) struct PerryVersions(Mutex<Vec<(String, String)>>);

impl PerryVersions {
    /// What `perry --version` said in the image `image_id`, if it was asked already.
    pub(crate) fn get(&self, image_id: &str) -> Option<String> {
        let known = self.0.lock().unwrap();
        known
            .iter()
            .find(|(id, _)| id == image_id)
            .map(|(_, version)| version.clone())
    }

    /// Remembers `version` for `image_id`, forgetting the oldest beyond [`KEEP`].
    pub(crate) fn put(&self, image_id: &str, version: &str) {
        let mut known = self.0.lock().unwrap();
        known.retain(|(id, _)| id != image_id);
        known.push((image_id.to_string(), version.to_string()));
        if known.len() > KEEP {
            known.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_answer_per_image_id_and_a_bounded_memory() {
        let versions = PerryVersions::default();
        assert_eq!(versions.get("sha256:a"), None);
        versions.put("sha256:a", "perry 0.5.3");
        assert_eq!(versions.get("sha256:a").as_deref(), Some("perry 0.5.3"));
        for i in 0..KEEP {
            versions.put(&format!("sha256:{i}"), "perry 0.6.0");
        }
        assert_eq!(versions.get("sha256:a"), None, "the oldest is forgotten");
        assert_eq!(versions.0.lock().unwrap().len(), KEEP);
    }
}
