//! Ban reasons as metric labels. Callers ban with a free-text reason (logged as is); the
//! `reason` label of `bttd_p2p_bans_total` is one of the fixed [`BAN_REASONS`], so a peer that
//! controls part of the text (an error message about its data) cannot create label values.

/// Every label value `bttd_p2p_bans_total{reason}` can take.
pub const BAN_REASONS: [&str; 8] = [
    "forged_signature",
    "bad_certificate",
    "bad_sync_block",
    "bad_sync_response",
    "undecodable",
    "bad_proposal",
    "wrong_chain",
    "other",
];

/// The label for a free-text ban reason (first match wins, most specific first).
pub fn ban_reason_label(reason: &str) -> &'static str {
    let reason = reason.to_ascii_lowercase();
    let has = |word: &str| reason.contains(word);
    if has("sync") {
        if has("block") || has("certificate") || has("body") {
            "bad_sync_block"
        } else {
            "bad_sync_response"
        }
    } else if has("certificate") {
        "bad_certificate"
    } else if has("signature") || has("forged") {
        "forged_signature"
    } else if has("decod") || has("malformed") || has("too large") || has("cbor") {
        "undecodable"
    } else if has("proposal") || has("payload") || has("header") || has("proposer") {
        "bad_proposal"
    } else if has("chain") || has("genesis") || has("protocol version") {
        "wrong_chain"
    } else {
        "other"
    }
}

/// Registers the ban counter at zero for every label, so dashboards and tests see all of them.
pub fn register_ban_metrics() {
    metrics::describe_counter!(
        "bttd_p2p_bans_total",
        "Peers banned, by reason (a fixed set of labels)"
    );
    for reason in BAN_REASONS {
        metrics::counter!("bttd_p2p_bans_total", "reason" => reason).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn todays_reasons_map_to_fixed_labels() {
        for (reason, label) in [
            ("bad signature", "forged_signature"),
            (
                "bad certificate: aggregate signature does not verify",
                "bad_certificate",
            ),
            ("certificate is for another block", "bad_certificate"),
            (
                "sync block does not match its certificate",
                "bad_sync_block",
            ),
            ("undecodable sync response: eof", "bad_sync_response"),
            (
                "undecodable consensus message: unexpected end",
                "undecodable",
            ),
            ("proposal payload does not match its header", "bad_proposal"),
            ("identify protocol version of another chain", "wrong_chain"),
            ("Something ELSE \u{1F600} chosen by an attacker", "other"),
        ] {
            assert_eq!(ban_reason_label(reason), label, "{reason}");
            assert!(BAN_REASONS.contains(&label));
        }
    }
}
