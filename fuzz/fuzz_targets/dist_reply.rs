//! Fuzz target: what a hostile EPMD or node sends the distribution client (`src/dist/`). The
//! first byte picks the parser, the rest is the peer's bytes:
//! 0. an EPMD `PORT2_RESP` answer (`epmd::parse_port2_resp`);
//! 1. an EPMD `NAMES` answer (`epmd::parse_names`);
//! 2. a handshake status (`handshake::parse_status`);
//! 3. a handshake challenge (`handshake::parse_challenge`);
//! 4. a challenge ack (`handshake::parse_ack`);
//! 5. a frame after the handshake (`rpc::parse_frame`), as the call's reply reader hands it over;
//! 6. one external term (`term::decode`).
//!
//! Invariants: no panic and no stack overflow whatever the bytes; nothing allocated beyond a
//! small multiple of the input (libFuzzer's -rss_limit_mb and -malloc_limit_mb catch it); a
//! decoded term displays (the probe's messages print replies) and, where it is of the kinds we
//! send, encodes and decodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rancher_boot::dist::term::{self, Pid, Term};
use rancher_boot::dist::{epmd, handshake, rpc};

fn sendable(t: &Term) -> bool {
    match t {
        Term::Atom(_) | Term::Int(_) | Term::Binary(_) | Term::Nil | Term::Pid(_) => true,
        Term::Tuple(items) => items.iter().all(sendable),
        Term::List(items, tail) => !items.is_empty() && items.iter().all(sendable) && sendable(tail),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    match which % 7 {
        0 => drop(epmd::parse_port2_resp(bytes)),
        1 => drop(epmd::parse_names(bytes)),
        2 => drop(handshake::parse_status(bytes)),
        3 => drop(handshake::parse_challenge(bytes)),
        4 => drop(handshake::parse_ack(bytes)),
        5 => {
            let from = Pid { node: "rancher-boot-1@127.0.0.1".into(), id: 1, serial: 0, creation: 1 };
            if let Ok(Some(reply)) = rpc::parse_frame(bytes, &from) {
                let _ = reply.to_string();
            }
        }
        _ => {
            if let Ok(t) = term::decode(bytes) {
                let _ = t.to_string();
                if sendable(&t) {
                    let mut out = Vec::new();
                    term::encode(&t, &mut out);
                    assert_eq!(term::decode(&out).as_ref(), Ok(&t), "encode then decode changed {t:?}");
                }
            }
        }
    }
});
