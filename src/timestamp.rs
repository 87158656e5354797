//! `jpki token sign --timestamp URL`: a signature time-stamp (RFC 3161 Appendix A, CAdES-T)
//! over the holder's signature value, asked of a TSA over HTTP (RFC 3161 §3.4) and added to
//! the SignedData as an unsigned attribute.

/// `cms` (DER SignedData, one signer) with a time-stamp token from the TSA at `url` over its
/// signature value. The answer must grant, echo our nonce and cover our imprint; the token's
/// trust (the TSA's certificate) is judged by whoever verifies the signature.
pub fn stamp(cms: &[u8], url: &str) -> Result<Vec<u8>, String> {
    let env = relying_party::cms::parse(cms).map_err(|e| e.to_string())?;
    let digest: [u8; 32] =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, env.signature_value())
            .as_ref()
            .try_into()
            .map_err(|_| "SHA-256 is 32 bytes".to_string())?;
    let nonce = tsa::token::nonce().map_err(|e| e.to_string())?;
    let request = tsa::token::request(&digest, &nonce).map_err(|e| e.to_string())?;
    let answer = relying_party::http::fetch(url, Some((tsa::token::QUERY_TYPE, &request)))
        .map_err(|e| e.to_string())?;
    let token =
        tsa::token::token_of_response(&answer, &digest, &nonce).map_err(|e| e.to_string())?;
    relying_party::cms::add_signature_timestamp(cms, &token).map_err(|e| e.to_string())
}
