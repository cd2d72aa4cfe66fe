//! RFC 3161 timestamping client: sends `TimeStampReq` (SHA-256 of the SignerInfo signature
//! octets, a random nonce, certReq) over HTTP, checks the response (granted, same imprint,
//! same nonce) and returns the `TimeStampToken` DER that goes into unsigned attribute
//! 1.3.6.1.4.1.311.3.3.1. A timestamp failure is a signing failure.

use super::invalid::SignatureError;
use super::pkcs7::OID_SHA256;
use super::{http, HttpPolicy, SignError};
use cmpv2::status::PkiStatus;
use der::asn1::{Int, OctetString};
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_tsp::{MessageImprint, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

/// Talks to one timestamp server.
pub(crate) struct TimestampClient {
    http: reqwest::Client,
    url: String,
    policy: HttpPolicy,
}

impl TimestampClient {
    pub(crate) fn new(http: reqwest::Client, url: &str, policy: HttpPolicy) -> Self {
        TimestampClient {
            http,
            url: url.to_string(),
            policy,
        }
    }

    /// Timestamps `signature` (the SignerInfo signature octets); returns the token DER.
    pub(crate) async fn stamp(
        &self,
        method: &'static str,
        signature: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        let err = |m: String| SignError::new(method, format!("timestamp: {m}"));
        let imprint: [u8; 32] = Sha256::digest(signature).into();
        let nonce = random_nonce().map_err(|e| err(e.to_string()))?;
        let request = TimeStampReq {
            version: TspVersion::V1,
            message_imprint: MessageImprint {
                hash_algorithm: AlgorithmIdentifierOwned {
                    oid: OID_SHA256,
                    parameters: Some(der::Any::null()),
                },
                hashed_message: OctetString::new(imprint.to_vec())
                    .map_err(|e| err(e.to_string()))?,
            },
            req_policy: None,
            nonce: Some(nonce.clone()),
            cert_req: true,
            extensions: None,
        }
        .to_der()
        .map_err(|e| err(e.to_string()))?;
        let resp = http::send(
            method,
            "timestamp server",
            &self.policy,
            self.policy.timestamp_attempts,
            || {
                self.http
                    .post(&self.url)
                    .header(reqwest::header::CONTENT_TYPE, "application/timestamp-query")
                    .body(request.clone())
            },
        )
        .await?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| err(format!("reading reply failed ({})", e.without_url())))?;
        token_from_response(&body, &imprint, &nonce).map_err(|m| err(m.to_string()))
    }
}

fn random_nonce() -> der::Result<Int> {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
    let value = u64::from_be_bytes(bytes) >> 1;
    Int::from_der(&value.to_der()?)
}

/// Checks a `TimeStampResp` and extracts the token.
pub(crate) fn token_from_response(
    body: &[u8],
    imprint: &[u8; 32],
    nonce: &Int,
) -> Result<Vec<u8>, SignatureError> {
    let resp = TimeStampResp::from_der(body)
        .map_err(|_| "reply is not an RFC 3161 TimeStampResp".to_string())?;
    match resp.status.status {
        PkiStatus::Accepted | PkiStatus::GrantedWithMods => {}
        other => return Err(format!("server refused the request (status {other:?})").into()),
    }
    let token = resp
        .time_stamp_token
        .ok_or("granted reply holds no token")?;
    let info = tst_info(&token)?;
    if info.message_imprint.hashed_message.as_bytes() != imprint {
        return Err("token covers a different message imprint".into());
    }
    if info.nonce.as_ref() != Some(nonce) {
        return Err("token nonce does not match the request".into());
    }
    token.to_der().map_err(|e| e.to_string().into())
}

/// The `TSTInfo` inside a token (a SignedData whose eContent is an OCTET STRING).
pub(crate) fn tst_info(token: &cms::content_info::ContentInfo) -> Result<TstInfo, SignatureError> {
    let sd: cms::signed_data::SignedData = token
        .content
        .decode_as()
        .map_err(|_| "token is not a SignedData".to_string())?;
    let econtent = sd
        .encap_content_info
        .econtent
        .ok_or("token has no content")?;
    let octets: OctetString = econtent
        .decode_as()
        .map_err(|_| "token content is not an OCTET STRING")?;
    TstInfo::from_der(octets.as_bytes()).map_err(|_| "token content is not a TSTInfo".into())
}
