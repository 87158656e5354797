//! Counters served at `/metrics` in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// OCSPResponseStatus (RFC 6960 §4.2.1) of an answer, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    Successful,
    MalformedRequest,
    InternalError,
    TryLater,
    Unauthorized,
}

impl ResponseStatus {
    const ALL: [ResponseStatus; 5] = [
        ResponseStatus::Successful,
        ResponseStatus::MalformedRequest,
        ResponseStatus::InternalError,
        ResponseStatus::TryLater,
        ResponseStatus::Unauthorized,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResponseStatus::Successful => "successful",
            ResponseStatus::MalformedRequest => "malformedRequest",
            ResponseStatus::InternalError => "internalError",
            ResponseStatus::TryLater => "tryLater",
            ResponseStatus::Unauthorized => "unauthorized",
        }
    }
}

/// Why an answer was what it was. `Unknown` counts single responses whose certStatus is
/// `unknown`; the others count whole answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    CacheHit,
    LiveSigned,
    Unknown,
    Unauthorized,
    Malformed,
    SourceFailed,
    Overloaded,
}

impl Cause {
    const ALL: [Cause; 7] = [
        Cause::CacheHit,
        Cause::LiveSigned,
        Cause::Unknown,
        Cause::Unauthorized,
        Cause::Malformed,
        Cause::SourceFailed,
        Cause::Overloaded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::CacheHit => "cache_hit",
            Cause::LiveSigned => "live_signed",
            Cause::Unknown => "unknown",
            Cause::Unauthorized => "unauthorized",
            Cause::Malformed => "malformed",
            Cause::SourceFailed => "source_failed",
            Cause::Overloaded => "overloaded",
        }
    }
}

/// HTTP-level rejections that never reach the OCSP layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpReject {
    UnsupportedMediaType,
    TooLarge,
    Timeout,
    NotFound,
    BadMethod,
}

impl HttpReject {
    const ALL: [HttpReject; 5] = [
        HttpReject::UnsupportedMediaType,
        HttpReject::TooLarge,
        HttpReject::Timeout,
        HttpReject::NotFound,
        HttpReject::BadMethod,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HttpReject::UnsupportedMediaType => "unsupported_media_type",
            HttpReject::TooLarge => "too_large",
            HttpReject::Timeout => "timeout",
            HttpReject::NotFound => "not_found",
            HttpReject::BadMethod => "bad_method",
        }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    status: [AtomicU64; 5],
    cause: [AtomicU64; 7],
    http: [AtomicU64; 5],
    not_modified: AtomicU64,
    resigned: AtomicU64,
    evicted: AtomicU64,
    signers_replaced: AtomicU64,
    /// Signatures made (every path: live, refresh, re-signer, pre-signer).
    signatures: AtomicU64,
    /// Answers served from the durable store of pre-signed answers.
    stored_hits: AtomicU64,
    /// Answers signed ahead of the question by the pre-signer.
    presigned: AtomicU64,
    /// Walks of every certificate by the pre-signer (with an issuance feed: the first start
    /// and the daily reconciliation only).
    presign_walks: AtomicU64,
    /// Signatures per second the pre-signer needs to keep every answer ahead of its
    /// nextUpdate (certificates ÷ the re-signing cycle), rounded up; 0 before the first pass.
    presign_needed: AtomicU64,
    /// The pre-signer's configured bound, signatures per second.
    presign_allowed: AtomicU64,
}

impl Metrics {
    pub fn status(&self, s: ResponseStatus) {
        self.status[s as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn cause(&self, c: Cause) {
        self.cause[c as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn http(&self, r: HttpReject) {
        self.http[r as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn not_modified(&self) {
        self.not_modified.fetch_add(1, Ordering::Relaxed);
    }
    pub fn resigned(&self, n: u64) {
        self.resigned.fetch_add(n, Ordering::Relaxed);
    }
    pub fn evicted(&self, n: u64) {
        self.evicted.fetch_add(n, Ordering::Relaxed);
    }
    /// A delegated signer was replaced (renewed) while running.
    pub fn signer_replaced(&self) {
        self.signers_replaced.fetch_add(1, Ordering::Relaxed);
    }

    pub fn signed(&self) {
        self.signatures.fetch_add(1, Ordering::Relaxed);
    }
    pub fn stored_hit(&self) {
        self.stored_hits.fetch_add(1, Ordering::Relaxed);
    }
    pub fn presigned(&self, n: u64) {
        self.presigned.fetch_add(n, Ordering::Relaxed);
    }
    /// One walk of every certificate by the pre-signer is over.
    pub fn presign_walked(&self) {
        self.presign_walks.fetch_add(1, Ordering::Relaxed);
    }
    pub fn count_presign_walks(&self) -> u64 {
        self.presign_walks.load(Ordering::Relaxed)
    }
    /// Signatures made since start.
    /// Records the pre-signer's need and bound after a pass.
    pub fn presign_capacity(&self, needed: u64, allowed: u64) {
        self.presign_needed.store(needed, Ordering::Relaxed);
        self.presign_allowed.store(allowed, Ordering::Relaxed);
    }

    pub fn count_signatures(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }
    /// Answers served from the durable store since start.
    pub fn count_stored_hits(&self) -> u64 {
        self.stored_hits.load(Ordering::Relaxed)
    }
    /// Answers pre-signed since start.
    pub fn count_presigned(&self) -> u64 {
        self.presigned.load(Ordering::Relaxed)
    }

    pub fn count_status(&self, s: ResponseStatus) -> u64 {
        self.status[s as usize].load(Ordering::Relaxed)
    }
    pub fn count_cause(&self, c: Cause) -> u64 {
        self.cause[c as usize].load(Ordering::Relaxed)
    }

    /// The Prometheus text format; `cache_entries` is a gauge read by the caller.
    pub fn render(&self, cache_entries: usize) -> String {
        let mut out = String::with_capacity(2048);
        let _ = writeln!(
            out,
            "# HELP ocsp_responses_total OCSP responses by OCSPResponseStatus."
        );
        let _ = writeln!(out, "# TYPE ocsp_responses_total counter");
        for s in ResponseStatus::ALL {
            let _ = writeln!(
                out,
                "ocsp_responses_total{{status=\"{}\"}} {}",
                s.as_str(),
                self.count_status(s)
            );
        }
        let _ = writeln!(
            out,
            "# HELP ocsp_causes_total Answers by cause (unknown counts single responses)."
        );
        let _ = writeln!(out, "# TYPE ocsp_causes_total counter");
        for c in Cause::ALL {
            let _ = writeln!(
                out,
                "ocsp_causes_total{{cause=\"{}\"}} {}",
                c.as_str(),
                self.count_cause(c)
            );
        }
        let _ = writeln!(
            out,
            "# HELP ocsp_http_rejects_total HTTP requests refused before OCSP parsing."
        );
        let _ = writeln!(out, "# TYPE ocsp_http_rejects_total counter");
        for r in HttpReject::ALL {
            let n = self.http[r as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "ocsp_http_rejects_total{{reason=\"{}\"}} {}",
                r.as_str(),
                n
            );
        }
        let _ = writeln!(out, "# TYPE ocsp_not_modified_total counter");
        let _ = writeln!(
            out,
            "ocsp_not_modified_total {}",
            self.not_modified.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE ocsp_cache_resigned_total counter");
        let _ = writeln!(
            out,
            "ocsp_cache_resigned_total {}",
            self.resigned.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE ocsp_cache_evicted_total counter");
        let _ = writeln!(
            out,
            "ocsp_cache_evicted_total {}",
            self.evicted.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE ocsp_signer_replacements_total counter");
        let _ = writeln!(
            out,
            "ocsp_signer_replacements_total {}",
            self.signers_replaced.load(Ordering::Relaxed)
        );
        for (name, v) in [
            ("ocsp_signatures_total", &self.signatures),
            ("ocsp_stored_hits_total", &self.stored_hits),
            ("ocsp_presigned_total", &self.presigned),
            ("ocsp_presign_walks_total", &self.presign_walks),
        ] {
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP ocsp_presign_needed_per_second Signatures per second needed to keep every stored answer ahead of its nextUpdate (above ocsp_presign_allowed_per_second: answers expire and are signed live)."
        );
        for (name, v) in [
            ("ocsp_presign_needed_per_second", &self.presign_needed),
            ("ocsp_presign_allowed_per_second", &self.presign_allowed),
        ] {
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        let _ = writeln!(out, "# TYPE ocsp_cache_entries gauge");
        let _ = writeln!(out, "ocsp_cache_entries {cache_entries}");
        out
    }
}
