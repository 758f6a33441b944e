//! One question and its answer, in DNS messages built and parsed by NLnet Labs' `domain` crate
//! (RFC 1035 section 4; SRV: RFC 2782). [`query`] writes the question, [`read_answer`] checks that
//! a datagram is the answer to it and takes out what a look needs: addresses, PTR names, SRV
//! targets, and the A/AAAA records of the additional section.
//!
//! The wire format is the crate's: every read of the message is bounds-checked, compression
//! pointers must point backwards and are limited per name, a name over 255 octets is an error.
//! What stays here is what `domain` does not decide for us:
//! - which names we send ([`check_name`]: letters, digits, `-` and `_` only, labels of 1 to 63,
//!   at most 253 characters) and which names we take from an answer ([`host_name`]: the same
//!   rules, for the names a PTR or SRV record gives);
//! - that an answer is the answer to our question (id, QR, opcode, the one question echoed);
//! - what a truncated answer still gives (the complete records before the cut).
//!
//! Both functions are pure, so that they are unit-tested with hand-built packets and fuzzed
//! (`fuzz/fuzz_targets/dns_answer.rs` feeds [`read_answer`] exactly as the look does).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use domain::base::iana::{Class, Opcode};
use domain::base::{Message, MessageBuilder, Name, ParsedName, Record, RecordSection};
use domain::rdata::{A, Aaaa, Ptr, Srv};

pub use domain::base::iana::Rcode;
pub use domain::base::iana::Rtype as Qtype;

/// The longest name in text, without the trailing dot (255 octets on the wire).
pub const MAX_NAME_LEN: usize = 253;
pub const MAX_LABEL_LEN: usize = 63;

/// What an answer says, for the types we ask.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub rcode: u8,
    /// TC: the server had more to say than fits in a UDP datagram; ask again over TCP.
    pub truncated: bool,
    /// The answer section's A and AAAA records of class IN, in their order, whatever their owner
    /// name (a CNAME chain ends in records of another name). Read for A and AAAA questions.
    pub addresses: Vec<IpAddr>,
    /// The PTR records' names, as the crate shows them (without the trailing dot, odd octets
    /// escaped), unchecked: [`host_name`] is the caller's.
    pub names: Vec<String>,
    /// The SRV records: priority, weight, port, target (as `names`).
    pub services: Vec<(u16, u16, u16, String)>,
    /// For SRV: the additional section's A and AAAA records of class IN, with their owner names
    /// lower-cased, to match the targets.
    pub glue: Vec<(String, IpAddr)>,
}

/// Why a name cannot be asked, or an answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not a name we send (see [`check_name`]).
    Name(String),
    /// Not the id of our query: someone else's answer (or a forgery); not ours to read.
    WrongId(u16),
    /// The QR bit is clear: a query, not an answer.
    NotAResponse,
    Opcode(u8),
    /// The question section is not our question.
    QuestionMismatch,
    /// The crate could not read the message: cut short, a bad name, a bad record.
    Malformed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Name(why) => f.write_str(why),
            Error::WrongId(id) => write!(f, "the answer is for query id {id}, not ours"),
            Error::NotAResponse => f.write_str("the answer is a query"),
            Error::Opcode(op) => write!(f, "the answer has opcode {op}"),
            Error::QuestionMismatch => f.write_str("the answer is not for our question"),
            Error::Malformed(why) => write!(f, "the answer cannot be read: {why}"),
        }
    }
}

impl std::error::Error for Error {}

fn malformed(e: impl fmt::Display) -> Error {
    Error::Malformed(e.to_string())
}

/// Checks a name we would send (a trailing dot allowed): not empty, labels of 1 to 63 letters,
/// digits, `-` or `_`, at most 253 characters without the dot.
pub fn check_name(name: &str) -> Result<(), Error> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err(Error::Name("the name is empty".into()));
    }
    if bare.len() > MAX_NAME_LEN {
        return Err(Error::Name(format!("the name is longer than {MAX_NAME_LEN} characters")));
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(Error::Name("the name has an empty label".into()));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(Error::Name(format!("the label \"{label}\" is longer than {MAX_LABEL_LEN} characters")));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(Error::Name(format!(
                "{c:?} is not a letter, digit, '-' or '_' (use the punycode form of an international name)"
            )));
        }
    }
    Ok(())
}

/// A name from an answer (a PTR's or an SRV target), as a host name: lower-cased, without the
/// trailing dot, and only if it passes [`check_name`] (Docker's names hold `_`, so it is allowed).
/// The error says what is wrong, with the name escaped for a log line.
pub fn host_name(shown: &str) -> Result<String, String> {
    match check_name(shown) {
        Ok(()) => Ok(shown.strip_suffix('.').unwrap_or(shown).to_ascii_lowercase()),
        Err(e) => Err(format!("\"{}\" is not a host name: {e}", shown.escape_debug())),
    }
}

/// A standard query with RD set and one question (`name`, `qtype`, class IN), without EDNS.
pub fn query(id: u16, name: &str, qtype: Qtype) -> Result<Vec<u8>, Error> {
    check_name(name)?;
    let qname = Name::<Vec<u8>>::from_str(name).map_err(|e| Error::Name(e.to_string()))?;
    let mut builder = MessageBuilder::new_vec();
    builder.header_mut().set_id(id);
    builder.header_mut().set_rd(true);
    let mut question = builder.question();
    question.push((&qname, qtype, Class::IN)).map_err(|e| Error::Name(e.to_string()))?;
    Ok(question.finish())
}

/// Reads an answer to `query(expected_id, name, qtype)`.
///
/// An answer with another id is [`Error::WrongId`]: the caller drops it and waits on. With an
/// rcode other than NOERROR the record sections are not read. A truncated answer (TC) yields the
/// complete records before the cut.
pub fn read_answer(bytes: &[u8], expected_id: u16, name: &str, qtype: Qtype) -> Result<Answer, Error> {
    let message = Message::from_slice(bytes).map_err(malformed)?;
    let header = message.header();
    if header.id() != expected_id {
        return Err(Error::WrongId(header.id()));
    }
    if !header.qr() {
        return Err(Error::NotAResponse);
    }
    if header.opcode() != Opcode::QUERY {
        return Err(Error::Opcode(header.opcode().to_int()));
    }
    let rcode = header.rcode();
    let mut answer = Answer { rcode: rcode.to_int(), truncated: header.tc(), ..Answer::default() };
    let is_error = rcode != Rcode::NOERROR && rcode != Rcode::NXDOMAIN;
    match message.header_counts().qdcount() {
        1 => {
            let question = message.sole_question().map_err(malformed)?;
            let asked = Name::<Vec<u8>>::from_str(name).map_err(|e| Error::Name(e.to_string()))?;
            if *question.qname() != asked || question.qtype() != qtype || question.qclass() != Class::IN {
                return Err(Error::QuestionMismatch);
            }
        }
        // Some servers leave the question out of an error; an error is all such an answer says.
        0 if is_error => {}
        _ => return Err(Error::QuestionMismatch),
    }
    if rcode != Rcode::NOERROR {
        return Ok(answer);
    }
    let section = message.answer().map_err(malformed)?;
    let cut = answer.truncated;
    if qtype == Qtype::PTR {
        read_records::<Ptr<ParsedName<&[u8]>>>(section, cut, |record| {
            answer.names.push(record.data().ptrdname().to_string());
        })?;
    } else if qtype == Qtype::SRV {
        read_records::<Srv<ParsedName<&[u8]>>>(section, cut, |record| {
            let srv = record.data();
            answer.services.push((srv.priority(), srv.weight(), srv.port(), srv.target().to_string()));
        })?;
        // The additional section comes after the answer and authority sections; a cut in either
        // leaves no glue, which is no error: the targets are then looked up.
        if let Ok(additional) = message.additional() {
            read_addresses(additional, true, |owner, address| {
                answer.glue.push((owner.to_string().to_ascii_lowercase(), address));
            })
            .ok();
        }
    } else {
        read_addresses(section, cut, |_, address| answer.addresses.push(address))?;
    }
    Ok(answer)
}

/// Calls `take` with each record of type `Data` and class IN in `section`. On a record that
/// cannot be read: stop if the message is truncated (what came before the cut is complete), else
/// fail.
fn read_records<'a, Data>(
    section: RecordSection<'a, [u8]>,
    truncated: bool,
    mut take: impl FnMut(&Record<ParsedName<&'a [u8]>, Data>),
) -> Result<(), Error>
where
    Data: domain::base::ParseRecordData<'a, [u8]>,
{
    for record in section.limit_to_in::<Data>() {
        match record {
            Ok(record) => take(&record),
            Err(_) if truncated => break,
            Err(e) => return Err(malformed(e)),
        }
    }
    Ok(())
}

/// The A and AAAA records of class IN of `section`, each with its owner name.
fn read_addresses<'a>(
    section: RecordSection<'a, [u8]>,
    truncated: bool,
    mut take: impl FnMut(&ParsedName<&'a [u8]>, IpAddr),
) -> Result<(), Error> {
    for record in section {
        let record = match record {
            Ok(record) => record,
            Err(_) if truncated => break,
            Err(e) => return Err(malformed(e)),
        };
        if record.class() != Class::IN {
            continue;
        }
        let address = if record.rtype() == Qtype::A {
            record.to_record::<A>().ok().flatten().map(|r| IpAddr::V4(r.data().addr()))
        } else if record.rtype() == Qtype::AAAA {
            record.to_record::<Aaaa>().ok().flatten().map(|r| IpAddr::V6(r.data().addr()))
        } else {
            None
        };
        if let Some(address) = address {
            take(&record.owner(), address);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::packets::{self, ANSWER, AT_QNAME, TC, header, question, record, record_of_class, wire_name};
    use proptest::prelude::*;

    fn ips(answer: &Answer) -> String {
        answer.addresses.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn a_query_is_one_question_with_rd_and_no_edns() {
        let query = query(0x1234, "svc.Demo.test.", Qtype::AAAA).unwrap();
        let mut expected = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"\x03svc\x04Demo\x04test\x00\x00\x1c\x00\x01");
        assert_eq!(query, expected);
        let ptr = super::query(1, "9.0.0.10.in-addr.arpa", Qtype::PTR).unwrap();
        assert_eq!(ptr[12..], *b"\x019\x010\x010\x0210\x07in-addr\x04arpa\x00\x00\x0c\x00\x01");
    }

    #[test]
    fn names_that_cannot_be_sent_are_refused() {
        for bad in ["", ".", "a..b", ".a", "a b", "é.test", "a/b", "..", "a.b..", "a\\.b", "a\\032b"] {
            assert!(matches!(query(1, bad, Qtype::A), Err(Error::Name(_))), "{bad:?}");
        }
        let label63 = "a".repeat(63);
        assert!(query(1, &format!("{label63}.test"), Qtype::A).is_ok());
        assert!(query(1, &format!("{label63}b.test"), Qtype::A).is_err());
        let long = ["abcdefghi"; 25].join("."); // 249 characters
        assert!(query(1, &format!("{long}.abc"), Qtype::A).is_ok()); // 253
        assert!(query(1, &format!("{long}.abc."), Qtype::A).is_ok());
        assert!(query(1, &format!("{long}.abcd"), Qtype::A).is_err()); // 254
        assert!(query(1, "_peers._tcp.my-svc", Qtype::SRV).is_ok());
    }

    #[test]
    fn host_names_are_checked_and_lower_cased() {
        assert_eq!(host_name("Web_1.My-Net").unwrap(), "web_1.my-net");
        assert_eq!(host_name("web.").unwrap(), "web");
        for bad in ["", "evil\\ name", "a\\.b", "x\\000y", "é", "a..b"] {
            let why = host_name(bad).unwrap_err();
            assert!(why.contains("is not a host name"), "{why}");
        }
    }

    #[test]
    fn addresses_are_read_from_the_answer_section_with_compressed_owners() {
        let mut packet = header(7, ANSWER, [1, 4, 0, 0]);
        question(&mut packet, "web.test", packets::A);
        record(&mut packet, &AT_QNAME, packets::A, &[10, 0, 0, 2]);
        record(&mut packet, &AT_QNAME, packets::A, &[10, 0, 0, 1]);
        record(&mut packet, &AT_QNAME, packets::AAAA, &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        record(&mut packet, b"\x03web\x04test\x00", packets::A, &[10, 0, 0, 3]);
        let answer = read_answer(&packet, 7, "WEB.test.", Qtype::A).unwrap();
        assert_eq!(ips(&answer), "10.0.0.2 10.0.0.1 fd00::7 10.0.0.3");
        assert_eq!((answer.rcode, answer.truncated), (0, false));
    }

    #[test]
    fn a_cname_chain_ends_in_the_addresses_of_another_name() {
        let mut packet = header(7, ANSWER, [1, 2, 0, 0]);
        question(&mut packet, "web.test", packets::A);
        let target_at = packet.len() + 12; // where the CNAME's rdata (the target name) starts
        record(&mut packet, &AT_QNAME, 5, b"\x04real\xC0\x10");
        record(&mut packet, &[0xC0, target_at as u8], packets::A, &[10, 9, 9, 9]);
        assert_eq!(ips(&read_answer(&packet, 7, "web.test", Qtype::A).unwrap()), "10.9.9.9");
    }

    #[test]
    fn other_types_classes_and_odd_lengths_are_ignored() {
        let mut packet = header(7, ANSWER, [1, 5, 0, 0]);
        question(&mut packet, "web.test", packets::A);
        record(&mut packet, &AT_QNAME, 16, b"\x05hello"); // TXT
        record_of_class(&mut packet, &AT_QNAME, packets::A, 3, &[10, 0, 0, 1]); // class CH
        record(&mut packet, &AT_QNAME, packets::A, &[10, 0, 0, 1, 0]); // rdlength 5
        record(&mut packet, &AT_QNAME, packets::AAAA, &[10, 0, 0, 1]); // rdlength 4
        record(&mut packet, &AT_QNAME, packets::A, &[10, 0, 0, 4]);
        assert_eq!(ips(&read_answer(&packet, 7, "web.test", Qtype::A).unwrap()), "10.0.0.4");
    }

    #[test]
    fn nxdomain_and_nodata_carry_nothing() {
        let mut packet = header(9, 0x8183, [1, 0, 1, 0]);
        question(&mut packet, "web.test", packets::AAAA);
        let answer = read_answer(&packet, 9, "web.test", Qtype::AAAA).unwrap();
        assert_eq!((answer.rcode, answer.addresses.len()), (3, 0));
        let mut packet = header(9, ANSWER, [1, 0, 0, 0]);
        question(&mut packet, "web.test", packets::AAAA);
        assert_eq!(read_answer(&packet, 9, "web.test", Qtype::AAAA).unwrap(), Answer::default());
        // An error without the question (some servers do that) is still an error answer.
        let packet = header(9, 0x8182, [0, 0, 0, 0]);
        assert_eq!(read_answer(&packet, 9, "web.test", Qtype::AAAA).unwrap().rcode, 2);
        let packet = header(9, 0x8183, [0, 0, 0, 0]);
        assert_eq!(read_answer(&packet, 9, "web.test", Qtype::AAAA), Err(Error::QuestionMismatch));
    }

    #[test]
    fn a_truncated_answer_keeps_the_records_before_the_cut() {
        let mut packet = header(7, ANSWER | TC, [1, 3, 0, 0]);
        question(&mut packet, "web.test", packets::A);
        record(&mut packet, &AT_QNAME, packets::A, &[10, 0, 0, 1]);
        record(&mut packet, &AT_QNAME, packets::A, &[10, 0, 0, 2]);
        packet.truncate(packet.len() - 3);
        let answer = read_answer(&packet, 7, "web.test", Qtype::A).unwrap();
        assert!(answer.truncated);
        assert_eq!(ips(&answer), "10.0.0.1");
        // Without TC, the same cut is an error.
        packet[2] &= !0x02;
        assert!(matches!(read_answer(&packet, 7, "web.test", Qtype::A), Err(Error::Malformed(_))));
    }

    #[test]
    fn answers_to_other_questions_are_refused() {
        let mut packet = header(7, ANSWER, [1, 0, 0, 0]);
        question(&mut packet, "web.test", packets::A);
        assert_eq!(read_answer(&packet, 8, "web.test", Qtype::A), Err(Error::WrongId(7)));
        assert_eq!(read_answer(&packet, 7, "web.test", Qtype::AAAA), Err(Error::QuestionMismatch));
        assert_eq!(read_answer(&packet, 7, "web.test.x", Qtype::A), Err(Error::QuestionMismatch));
        assert_eq!(read_answer(&packet, 7, "eb.test", Qtype::A), Err(Error::QuestionMismatch));
        let mut query = packet.clone();
        query[2] &= 0x7F;
        assert_eq!(read_answer(&query, 7, "web.test", Qtype::A), Err(Error::NotAResponse));
        let mut status = packet.clone();
        status[2] |= 2 << 3;
        assert_eq!(read_answer(&status, 7, "web.test", Qtype::A), Err(Error::Opcode(2)));
        let mut two = packet.clone();
        two[5] = 2;
        assert_eq!(read_answer(&two, 7, "web.test", Qtype::A), Err(Error::QuestionMismatch));
        let mut chaos = packet;
        let last = chaos.len() - 1;
        chaos[last] = 3;
        assert_eq!(read_answer(&chaos, 7, "web.test", Qtype::A), Err(Error::QuestionMismatch));
    }

    #[test]
    fn compression_loops_and_pointers_past_the_end_are_errors() {
        // A question name that points at itself, or forwards past the end.
        let mut packet = header(7, ANSWER, [1, 0, 0, 0]);
        packet.extend_from_slice(b"\x02ab\xC0\x0C\x00\x01\x00\x01");
        assert!(matches!(read_answer(&packet, 7, "ab.ab", Qtype::A), Err(Error::Malformed(_))));
        let mut packet = header(7, ANSWER, [1, 0, 0, 0]);
        packet.extend_from_slice(&[0xC3, 0xFF, 0, 1, 0, 1]);
        assert!(matches!(read_answer(&packet, 7, "web", Qtype::A), Err(Error::Malformed(_))));
        // An owner name that loops, or points past the end.
        for owner in [[0xC0, 0x1E], [0xC3, 0xFF]] {
            let mut packet = header(7, ANSWER, [1, 1, 0, 0]);
            question(&mut packet, "web.test", packets::A);
            record(&mut packet, &owner, packets::A, &[10, 0, 0, 1]);
            assert!(matches!(read_answer(&packet, 7, "web.test", Qtype::A), Err(Error::Malformed(_))), "{owner:?}");
        }
        // A name longer than 255 octets.
        let mut packet = header(7, ANSWER, [1, 1, 0, 0]);
        question(&mut packet, "web.test", packets::A);
        let long = wire_name(&format!("{0}.{0}.{0}.{0}.abcdefgh", "x".repeat(63)));
        record(&mut packet, &long, packets::A, &[10, 0, 0, 1]);
        assert!(matches!(read_answer(&packet, 7, "web.test", Qtype::A), Err(Error::Malformed(_))));
    }

    #[test]
    fn ptr_names_are_read_as_they_are() {
        let mut packet = header(7, ANSWER, [1, 2, 0, 0]);
        question(&mut packet, "9.0.0.10.in-addr.arpa", packets::PTR);
        record(&mut packet, &AT_QNAME, packets::PTR, &wire_name("Web-1.net"));
        record(&mut packet, &AT_QNAME, packets::PTR, b"\x04a b.\x00");
        record(&mut packet, &AT_QNAME, packets::A, &[10, 0, 0, 1]);
        packet[7] = 3;
        let answer = read_answer(&packet, 7, "9.0.0.10.in-addr.arpa", Qtype::PTR).unwrap();
        assert_eq!(answer.names, ["Web-1.net", "a\\ b\\."]);
        assert!(answer.addresses.is_empty());
    }

    #[test]
    fn srv_records_and_their_glue() {
        let mut packet = header(7, ANSWER, [1, 2, 0, 2]);
        question(&mut packet, "_epmd._tcp.web.test", packets::SRV);
        let mut rdata = vec![0, 10, 0, 5, 0x11, 0x11];
        rdata.extend_from_slice(&wire_name("web-0.web.test"));
        let target_at = packet.len() + 12 + 6; // the first SRV's target, after its owner, header, numbers
        record(&mut packet, &AT_QNAME, packets::SRV, &rdata);
        record(&mut packet, &AT_QNAME, packets::SRV, &[0, 20, 0, 0, 0x11, 0x11, 0]);
        record(&mut packet, &[0xC0, target_at as u8], packets::A, &[10, 0, 0, 10]);
        record(&mut packet, b"\x05OTHER\x00", packets::AAAA, &[0xfd; 16]);
        let answer = read_answer(&packet, 7, "_epmd._tcp.web.test", Qtype::SRV).unwrap();
        assert_eq!(answer.services, [(10, 5, 4369, "web-0.web.test".to_string()), (20, 0, 4369, String::new())]);
        assert_eq!(answer.glue[0], ("web-0.web.test".to_string(), "10.0.0.10".parse().unwrap()));
        assert_eq!(answer.glue[1].0, "other");
        assert!(answer.addresses.is_empty());
    }

    #[test]
    fn malformed_lengths_are_errors_not_panics() {
        let mut good = header(7, ANSWER, [1, 1, 0, 0]);
        question(&mut good, "web.test", packets::A);
        record(&mut good, &AT_QNAME, packets::A, &[10, 0, 0, 1]);
        // Every prefix of a good answer, and every single-byte change of it.
        for len in 0..good.len() {
            assert!(read_answer(&good[..len], 7, "web.test", Qtype::A).is_err(), "prefix {len}");
        }
        for at in 0..good.len() {
            for value in [0x00, 0x01, 0x3F, 0x40, 0x80, 0xC0, 0xFF] {
                let mut bad = good.clone();
                bad[at] = value;
                let _ = read_answer(&bad, 7, "web.test", Qtype::A);
            }
        }
        // An rdlength past the end; more answers announced than present.
        let mut bad = good.clone();
        let rdlength_at = bad.len() - 6;
        bad[rdlength_at..rdlength_at + 2].copy_from_slice(&600u16.to_be_bytes());
        assert!(matches!(read_answer(&bad, 7, "web.test", Qtype::A), Err(Error::Malformed(_))));
        let mut bad = good;
        bad[7] = 200;
        assert!(matches!(read_answer(&bad, 7, "web.test", Qtype::A), Err(Error::Malformed(_))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Anything after a plausible header and question: no panic, and every record found
        /// comes from the input.
        #[test]
        fn read_answer_never_panics(
            tail in prop::collection::vec(prop_oneof![any::<u8>(), prop::sample::select(vec![0u8, 1, 4, 12, 16, 28, 33, 0xC0])], 0..200),
            flags in any::<u16>(),
            counts in any::<[u8; 4]>(),
            which in 0usize..4,
        ) {
            let (qtype, code) = [(Qtype::A, packets::A), (Qtype::AAAA, packets::AAAA), (Qtype::PTR, packets::PTR), (Qtype::SRV, packets::SRV)][which];
            let mut packet = header(7, flags | 0x8000, counts.map(u16::from));
            question(&mut packet, "web.test", code);
            packet.extend_from_slice(&tail);
            if let Ok(answer) = read_answer(&packet, 7, "web.test", qtype) {
                let records = answer.addresses.len() + answer.names.len() + answer.services.len() + answer.glue.len();
                prop_assert!(records <= packet.len() / 11);
            }
            let _ = read_answer(&tail, 7, "web.test", qtype);
        }
    }
}
