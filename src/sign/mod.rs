//! Authenticode signing on the host: PFX, Azure Trusted Signing, Google Cloud KMS.
