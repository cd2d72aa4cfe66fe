//! Steps as host processes (tokio::process), for `PERRY_DOCKER_ENABLED=false`.
