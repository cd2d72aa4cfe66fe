//! An in-process Perry Hub (WebSocket + HTTP on 127.0.0.1) for tests, benches and demos.
