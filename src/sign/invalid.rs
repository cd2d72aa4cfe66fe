//! Why signing material or a signed file was refused, as typed errors: a certificate or
//! chain ([`CertificateError`]), a PKCS#7 signature, timestamp token or APPX signature blob
//! ([`SignatureError`]), a PFX file ([`PfxError`]). Callers that report to users wrap them
//! into a [`super::SignError`] naming the signing method; the messages name what is wrong
//! and never hold key material or a password.

/// A certificate (or chain) that cannot be used or parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertificateError(pub String);

/// A signature, timestamp token or signature blob that is malformed or does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signer's (or the TSA's) certificate is unusable.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// The structure is malformed or a check (digest, signature, nonce) fails.
    #[error("{0}")]
    Invalid(String),
}

/// A PFX that cannot be opened, or whose key or certificates are unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PfxError {
    /// The certificate in the PFX is unusable.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// The file, its password or its key.
    #[error("{0}")]
    Unreadable(String),
}

macro_rules! from_message {
    ($ty:ty, $make:expr) => {
        impl From<String> for $ty {
            fn from(message: String) -> Self {
                $make(message)
            }
        }
        impl From<&str> for $ty {
            fn from(message: &str) -> Self {
                $make(message.to_string())
            }
        }
    };
}

from_message!(CertificateError, CertificateError);
from_message!(SignatureError, SignatureError::Invalid);
from_message!(PfxError, PfxError::Unreadable);
