//! The cryptography `jsonwebtoken` uses in the worker: HS256 verification only.
//!
//! `jsonwebtoken` takes its algorithms from a `CryptoProvider`. Its own pure-Rust provider
//! (`rust_crypto`, what the origin uses) links every algorithm it knows (RSA, ECDSA, EdDSA) into
//! whatever calls it, which took the worker from 224 KB to 437 KB gzipped; the worker verifies
//! HS256 only (`shared::token`), so it installs this provider, which implements that one
//! algorithm with RustCrypto's `hmac` and `sha2` and refuses the rest. Signing is never done
//! here: the origin mints tokens.

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use sha2::Sha256;

/// HS256 and nothing else.
static HS256_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: refuse_signing,
    verifier_factory: hs256_verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes [`HS256_ONLY`] the provider of this isolate (once; later calls change nothing).
pub fn install() {
    let _ = HS256_ONLY.install_default();
}

fn refuse_signing(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

fn hs256_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::HS256 || key.family() != AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let mac = Hmac::<Sha256>::new_from_slice(key.try_get_as_bytes()?)
        .map_err(|_| ErrorKind::InvalidKeyFormat)?;
    Ok(Box::new(Hs256(mac)))
}

struct Hs256(Hmac<Sha256>);

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        // A constant-time comparison.
        mac.verify_slice(signature)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}
