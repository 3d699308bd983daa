//! Minimal PEM reading for RSA private keys: the base64 between the BEGIN and END lines, as DER.
//! Kept in-crate so both RSA backends see the same DER and so that parse errors never echo the input.

use base64::Engine as _;
use zeroize::Zeroizing;

/// The DER encodings of an RSA private key this crate accepts.
pub(crate) enum PrivateKeyDer {
    /// `-----BEGIN RSA PRIVATE KEY-----`: an RSAPrivateKey (PKCS#1).
    Pkcs1(Zeroizing<Vec<u8>>),
    /// `-----BEGIN PRIVATE KEY-----`: an unencrypted PrivateKeyInfo (PKCS#8).
    Pkcs8(Zeroizing<Vec<u8>>),
}

/// Reads the first private key block of `pem`. The error is a reason string without key bytes.
pub(crate) fn parse_private_key(pem: &str) -> Result<PrivateKeyDer, String> {
    let mut lines = pem.lines().map(str::trim);
    let label = loop {
        let Some(line) = lines.next() else {
            return Err("no pem BEGIN line found".to_owned());
        };
        if let Some(rest) = line.strip_prefix("-----BEGIN ") {
            let Some(label) = rest.strip_suffix("-----") else {
                return Err("malformed pem BEGIN line".to_owned());
            };
            break label;
        }
    };
    let kind = match label {
        "RSA PRIVATE KEY" => false,
        "PRIVATE KEY" => true,
        "ENCRYPTED PRIVATE KEY" => {
            return Err("encrypted pkcs#8 keys are not supported; decrypt the key first".to_owned())
        }
        other => return Err(format!("unsupported pem label {other:?}")),
    };
    let end = format!("-----END {label}-----");
    let mut body = Zeroizing::new(String::new());
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if line.contains(':') {
            // RFC 1421 headers (Proc-Type, DEK-Info) mean an encrypted legacy key.
            return Err("pem headers (legacy encrypted key) are not supported".to_owned());
        }
        body.push_str(line);
    }
    if !ended {
        return Err(format!("no pem END line for {label:?}"));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|_| "pem body is not valid base64".to_owned())?;
    let der = Zeroizing::new(der);
    Ok(if kind {
        PrivateKeyDer::Pkcs8(der)
    } else {
        PrivateKeyDer::Pkcs1(der)
    })
}

/// Parses a private key PEM with the `rsa` crate (used by the RustCrypto backend, by the PKCS#1 to
/// PKCS#8 conversion for aws-lc-rs, and by [`crate::WrappingKey`]).
pub(crate) fn rsa_private_key(pem: &str) -> Result<rsa::RsaPrivateKey, String> {
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    use rsa::pkcs8::DecodePrivateKey as _;
    match parse_private_key(pem)? {
        PrivateKeyDer::Pkcs1(der) => rsa::RsaPrivateKey::from_pkcs1_der(&der)
            .map_err(|e| format!("invalid pkcs#1 rsa private key: {e}")),
        PrivateKeyDer::Pkcs8(der) => rsa::RsaPrivateKey::from_pkcs8_der(&der)
            .map_err(|e| format!("invalid pkcs#8 rsa private key: {e}")),
    }
}
