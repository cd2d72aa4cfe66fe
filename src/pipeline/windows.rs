//! The real pipeline: compile (or take a precompiled bundle), resources, sign, package.
