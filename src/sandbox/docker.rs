//! Disposable hardened containers through the Docker Engine API (bollard).
