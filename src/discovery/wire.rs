//! The DNS wire format (RFC 1035 section 4), as much of it as a stub resolver asking for A and
//! AAAA needs: [`build_query`] writes one question, [`parse_response`] checks that an answer is
//! the answer to it and takes the addresses out.
//!
//! Both are pure, so that they can be unit-tested with hand-built packets and fuzzed.
//! [`parse_response`] reads through a [`Cursor`] whose every read is bounds-checked and returns an
//! error instead of indexing past the end: no input makes it panic, loop or allocate more than
//! the input's size. Compression pointers are followed only for the question name, and only
//! backwards, at most [`MAX_POINTERS`] times; names elsewhere are skipped without following them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The record types we ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qtype {
    A,
    Aaaa,
}

impl Qtype {
    pub fn code(self) -> u16 {
        match self {
            Qtype::A => TYPE_A,
            Qtype::Aaaa => TYPE_AAAA,
        }
    }
}

impl fmt::Display for Qtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Qtype::A => "A",
            Qtype::Aaaa => "AAAA",
        })
    }
}

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const HEADER_LEN: usize = 12;
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;

/// The longest name in text, without the trailing dot (255 octets on the wire).
pub const MAX_NAME_LEN: usize = 253;
pub const MAX_LABEL_LEN: usize = 63;
/// More compression pointers than this in one name is an error (a real name has a few).
pub const MAX_POINTERS: usize = 16;

/// Response codes (RFC 1035 4.1.1; 6895).
pub const NOERROR: u8 = 0;
pub const NXDOMAIN: u8 = 3;

/// The name of a response code, for messages.
pub fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => format!("RCODE {other}"),
    }
}

/// What an answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The A and AAAA records of class IN in the answer section, in their order, whatever their
    /// owner name (a CNAME chain ends in records of another name).
    pub addresses: Vec<IpAddr>,
    pub rcode: u8,
    /// TC: the server had more to say than fits in a UDP datagram; ask again over TCP.
    pub truncated: bool,
}

/// Why a name cannot be asked, or an answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not a name we send: empty, an empty label, a label over 63 or a name over 253 characters,
    /// or a character other than a letter, a digit, `-` or `_`.
    Name(String),
    /// The answer ends before its header, a record or a name does.
    Short,
    /// Not the id of our query: someone else's answer (or a forgery); not ours to read.
    WrongId(u16),
    /// The QR bit is clear: a query, not an answer.
    NotAResponse,
    Opcode(u8),
    /// The question section is not our question.
    QuestionMismatch,
    /// A label type other than a plain label or a compression pointer (RFC 6891 reserves them).
    LabelType(u8),
    /// A pointer forwards, or more than [`MAX_POINTERS`] of them, or a name over 255 octets.
    BadName,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Name(why) => write!(f, "{why}"),
            Error::Short => f.write_str("the answer is cut short"),
            Error::WrongId(id) => write!(f, "the answer is for query id {id}, not ours"),
            Error::NotAResponse => f.write_str("the answer is a query"),
            Error::Opcode(op) => write!(f, "the answer has opcode {op}"),
            Error::QuestionMismatch => f.write_str("the answer is not for our question"),
            Error::LabelType(byte) => write!(f, "the answer has a label of unknown type 0x{byte:02x}"),
            Error::BadName => f.write_str("the answer has a malformed compressed name"),
        }
    }
}

impl std::error::Error for Error {}

/// Checks a name (trailing dot allowed) and writes it in wire format: length-prefixed labels and
/// the zero octet of the root.
pub fn encode_name(name: &str) -> Result<Vec<u8>, Error> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err(Error::Name("the name is empty".into()));
    }
    if bare.len() > MAX_NAME_LEN {
        return Err(Error::Name(format!("the name is longer than {MAX_NAME_LEN} characters")));
    }
    let mut wire = Vec::with_capacity(bare.len() + 2);
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
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    Ok(wire)
}

/// A standard query with RD set and one question (`name`, `qtype`, class IN), without EDNS.
pub fn build_query(id: u16, name: &str, qtype: Qtype) -> Result<Vec<u8>, Error> {
    let qname = encode_name(name)?;
    let mut query = Vec::with_capacity(HEADER_LEN + qname.len() + 4);
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&FLAG_RD.to_be_bytes());
    query.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1, AN/NS/AR 0
    query.extend_from_slice(&qname);
    query.extend_from_slice(&qtype.code().to_be_bytes());
    query.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(query)
}

/// Reads an answer to the query `build_query(expected_id, name, qtype)`.
///
/// An answer with another id is [`Error::WrongId`]: the caller drops it and waits on. With an
/// rcode other than NOERROR the answer section is not read. A truncated answer (TC) yields the
/// complete records before the cut.
pub fn parse_response(bytes: &[u8], expected_id: u16, name: &str, qtype: Qtype) -> Result<Answer, Error> {
    let mut cursor = Cursor::new(bytes);
    let id = cursor.u16()?;
    if id != expected_id {
        return Err(Error::WrongId(id));
    }
    let flags = cursor.u16()?;
    if flags & FLAG_QR == 0 {
        return Err(Error::NotAResponse);
    }
    let opcode = ((flags >> 11) & 0xF) as u8;
    if opcode != 0 {
        return Err(Error::Opcode(opcode));
    }
    let truncated = flags & FLAG_TC != 0;
    let rcode = (flags & 0xF) as u8;
    let qdcount = cursor.u16()?;
    let ancount = cursor.u16()?;
    cursor.skip(4)?; // NSCOUNT, ARCOUNT: not read

    match qdcount {
        1 => {
            let asked = encode_name(name)?;
            let echoed = read_name(bytes, &mut cursor)?;
            let (qt, qc) = (cursor.u16()?, cursor.u16()?);
            if !echoed.eq_ignore_ascii_case(&asked) || qt != qtype.code() || qc != CLASS_IN {
                return Err(Error::QuestionMismatch);
            }
        }
        // Some servers leave the question out of an error; an error is all such an answer says.
        0 if rcode != NOERROR && rcode != NXDOMAIN => {}
        _ => return Err(Error::QuestionMismatch),
    }

    let mut answer = Answer { addresses: Vec::new(), rcode, truncated };
    if rcode != NOERROR {
        return Ok(answer);
    }
    for _ in 0..ancount {
        match read_record(&mut cursor) {
            Ok(Some(address)) => answer.addresses.push(address),
            Ok(None) => {}
            // Cut at the size of the datagram: what came before the cut is complete.
            Err(Error::Short) if truncated => break,
            Err(e) => return Err(e),
        }
    }
    Ok(answer)
}

/// One resource record: its address if it is an A or AAAA record of class IN.
fn read_record(cursor: &mut Cursor<'_>) -> Result<Option<IpAddr>, Error> {
    skip_name(cursor)?;
    let rtype = cursor.u16()?;
    let class = cursor.u16()?;
    cursor.skip(4)?; // TTL
    let rdlength = usize::from(cursor.u16()?);
    let rdata = cursor.take(rdlength)?;
    if class != CLASS_IN {
        return Ok(None);
    }
    Ok(match (rtype, rdata) {
        (TYPE_A, &[a, b, c, d]) => Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d))),
        (TYPE_AAAA, rdata) if rdata.len() == 16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(rdata);
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    })
}

/// Moves past a name without following its pointer (a pointer ends a name).
fn skip_name(cursor: &mut Cursor<'_>) -> Result<(), Error> {
    let mut length = 0usize;
    loop {
        let byte = cursor.u8()?;
        match byte & 0xC0 {
            0x00 if byte == 0 => return Ok(()),
            0x00 => {
                cursor.skip(usize::from(byte))?;
                length += usize::from(byte) + 1;
                if length > 255 {
                    return Err(Error::BadName);
                }
            }
            0xC0 => {
                cursor.u8()?;
                return Ok(());
            }
            _ => return Err(Error::LabelType(byte)),
        }
    }
}

/// Reads a name at the cursor into its uncompressed wire form, following pointers: each one must
/// point before the start of the part of the name being read (so every jump goes strictly
/// backwards and the walk ends), and at most [`MAX_POINTERS`] of them.
fn read_name(packet: &[u8], cursor: &mut Cursor<'_>) -> Result<Vec<u8>, Error> {
    let mut name = Vec::new();
    let mut at = Cursor { bytes: packet, pos: cursor.pos };
    let mut segment_start = cursor.pos;
    let mut pointers = 0;
    let mut resume: Option<usize> = None;
    loop {
        let byte = at.u8()?;
        match byte & 0xC0 {
            0x00 => {
                name.push(byte);
                if byte == 0 {
                    break;
                }
                name.extend_from_slice(at.take(usize::from(byte))?);
                if name.len() > 255 {
                    return Err(Error::BadName);
                }
            }
            0xC0 => {
                let target = (usize::from(byte & 0x3F) << 8) | usize::from(at.u8()?);
                resume.get_or_insert(at.pos);
                pointers += 1;
                if pointers > MAX_POINTERS || target >= segment_start {
                    return Err(Error::BadName);
                }
                segment_start = target;
                at.pos = target;
            }
            _ => return Err(Error::LabelType(byte)),
        }
    }
    cursor.pos = resume.unwrap_or(at.pos);
    Ok(name)
}

/// A read position in a packet. Every read checks the bounds and says [`Error::Short`] instead of
/// going past the end; nothing here indexes a slice directly.
#[derive(Debug)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    pub fn take(&mut self, len: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(len).ok_or(Error::Short)?;
        let slice = self.bytes.get(self.pos..end).ok_or(Error::Short)?;
        self.pos = end;
        Ok(slice)
    }

    pub fn skip(&mut self, len: usize) -> Result<(), Error> {
        self.take(len).map(|_| ())
    }

    pub fn u8(&mut self) -> Result<u8, Error> {
        match self.take(1)? {
            &[byte] => Ok(byte),
            _ => Err(Error::Short),
        }
    }

    pub fn u16(&mut self) -> Result<u16, Error> {
        match self.take(2)? {
            &[hi, lo] => Ok(u16::from_be_bytes([hi, lo])),
            _ => Err(Error::Short),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A response header: id, flags, and the four counts.
    fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
        let mut packet = Vec::new();
        packet.extend_from_slice(&id.to_be_bytes());
        packet.extend_from_slice(&flags.to_be_bytes());
        for count in counts {
            packet.extend_from_slice(&count.to_be_bytes());
        }
        packet
    }

    fn question(packet: &mut Vec<u8>, name: &str, qtype: u16) {
        packet.extend_from_slice(&encode_name(name).unwrap());
        packet.extend_from_slice(&qtype.to_be_bytes());
        packet.extend_from_slice(&CLASS_IN.to_be_bytes());
    }

    /// A record whose owner name is `owner` (wire bytes, possibly a pointer).
    fn record(packet: &mut Vec<u8>, owner: &[u8], rtype: u16, class: u16, rdata: &[u8]) {
        packet.extend_from_slice(owner);
        packet.extend_from_slice(&rtype.to_be_bytes());
        packet.extend_from_slice(&class.to_be_bytes());
        packet.extend_from_slice(&300u32.to_be_bytes());
        packet.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        packet.extend_from_slice(rdata);
    }

    /// Pointer to the question name, which starts right after the header.
    const AT_QNAME: [u8; 2] = [0xC0, 12];
    const RESPONSE: u16 = 0x8180; // QR, RD, RA, NOERROR

    fn ips(answer: &Answer) -> String {
        answer.addresses.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn a_query_is_one_question_with_rd_and_no_edns() {
        let query = build_query(0x1234, "svc.Demo.test.", Qtype::Aaaa).unwrap();
        let mut expected = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"\x03svc\x04Demo\x04test\x00\x00\x1c\x00\x01");
        assert_eq!(query, expected);
        assert_eq!(build_query(1, "svc.demo.test", Qtype::A).unwrap()[12..], encode_query_tail("svc.demo.test", 1));
    }

    fn encode_query_tail(name: &str, qtype: u16) -> Vec<u8> {
        let mut tail = encode_name(name).unwrap();
        tail.extend_from_slice(&qtype.to_be_bytes());
        tail.extend_from_slice(&[0, 1]);
        tail
    }

    #[test]
    fn names_that_cannot_be_sent_are_refused() {
        for bad in ["", ".", "a..b", ".a", "a b", "é.test", "a/b", "..", "a.b.."] {
            assert!(matches!(build_query(1, bad, Qtype::A), Err(Error::Name(_))), "{bad:?}");
        }
        let label63 = "a".repeat(63);
        assert!(build_query(1, &format!("{label63}.test"), Qtype::A).is_ok());
        assert!(build_query(1, &format!("{label63}b.test"), Qtype::A).is_err());
        let long = ["abcdefghi"; 25].join("."); // 249 characters
        assert!(build_query(1, &format!("{long}.abc"), Qtype::A).is_ok()); // 253
        assert!(build_query(1, &format!("{long}.abc."), Qtype::A).is_ok());
        assert!(build_query(1, &format!("{long}.abcd"), Qtype::A).is_err()); // 254
        assert!(build_query(1, "_peers._tcp.my-svc", Qtype::A).is_ok());
    }

    #[test]
    fn addresses_are_read_from_the_answer_section_with_compressed_owners() {
        let mut packet = header(7, RESPONSE, [1, 4, 0, 0]);
        question(&mut packet, "web.test", TYPE_A);
        record(&mut packet, &AT_QNAME, TYPE_A, CLASS_IN, &[10, 0, 0, 2]);
        record(&mut packet, &AT_QNAME, TYPE_A, CLASS_IN, &[10, 0, 0, 1]);
        record(&mut packet, &AT_QNAME, TYPE_AAAA, CLASS_IN, &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        record(&mut packet, b"\x03web\x04test\x00", TYPE_A, CLASS_IN, &[10, 0, 0, 3]);
        let answer = parse_response(&packet, 7, "WEB.test.", Qtype::A).unwrap();
        assert_eq!(ips(&answer), "10.0.0.2 10.0.0.1 fd00::7 10.0.0.3");
        assert_eq!((answer.rcode, answer.truncated), (NOERROR, false));
    }

    #[test]
    fn a_cname_chain_ends_in_the_addresses_of_another_name() {
        let mut packet = header(7, RESPONSE, [1, 2, 0, 0]);
        question(&mut packet, "web.test", TYPE_A);
        let target_at = packet.len() + 12; // where the CNAME's rdata (the target name) starts
        let target = b"\x04real\xC0\x10"; // real.test, "test" by pointer into the question
        record(&mut packet, &AT_QNAME, 5, CLASS_IN, target);
        record(&mut packet, &[0xC0, target_at as u8], TYPE_A, CLASS_IN, &[10, 9, 9, 9]);
        assert_eq!(ips(&parse_response(&packet, 7, "web.test", Qtype::A).unwrap()), "10.9.9.9");
    }

    #[test]
    fn other_types_classes_and_odd_lengths_are_ignored() {
        let mut packet = header(7, RESPONSE, [1, 5, 0, 0]);
        question(&mut packet, "web.test", TYPE_A);
        record(&mut packet, &AT_QNAME, 16, CLASS_IN, b"\x05hello"); // TXT
        record(&mut packet, &AT_QNAME, TYPE_A, 3, &[10, 0, 0, 1]); // class CH
        record(&mut packet, &AT_QNAME, TYPE_A, CLASS_IN, &[10, 0, 0, 1, 0]); // rdlength 5
        record(&mut packet, &AT_QNAME, TYPE_AAAA, CLASS_IN, &[10, 0, 0, 1]); // rdlength 4
        record(&mut packet, &AT_QNAME, TYPE_A, CLASS_IN, &[10, 0, 0, 4]);
        assert_eq!(ips(&parse_response(&packet, 7, "web.test", Qtype::A).unwrap()), "10.0.0.4");
    }

    #[test]
    fn nxdomain_and_nodata_carry_no_addresses() {
        let mut packet = header(9, 0x8183, [1, 0, 1, 0]);
        question(&mut packet, "web.test", TYPE_AAAA);
        let answer = parse_response(&packet, 9, "web.test", Qtype::Aaaa).unwrap();
        assert_eq!((answer.rcode, answer.addresses.len()), (NXDOMAIN, 0));
        let mut packet = header(9, RESPONSE, [1, 0, 0, 0]);
        question(&mut packet, "web.test", TYPE_AAAA);
        assert_eq!(parse_response(&packet, 9, "web.test", Qtype::Aaaa).unwrap().rcode, NOERROR);
        // An error without the question (some servers do that) is still an error answer.
        let packet = header(9, 0x8182, [0, 0, 0, 0]);
        assert_eq!(parse_response(&packet, 9, "web.test", Qtype::Aaaa).unwrap().rcode, 2);
        let packet = header(9, 0x8183, [0, 0, 0, 0]);
        assert_eq!(parse_response(&packet, 9, "web.test", Qtype::Aaaa), Err(Error::QuestionMismatch));
    }

    #[test]
    fn a_truncated_answer_keeps_the_records_before_the_cut() {
        let mut packet = header(7, RESPONSE | FLAG_TC, [1, 3, 0, 0]);
        question(&mut packet, "web.test", TYPE_A);
        record(&mut packet, &AT_QNAME, TYPE_A, CLASS_IN, &[10, 0, 0, 1]);
        record(&mut packet, &AT_QNAME, TYPE_A, CLASS_IN, &[10, 0, 0, 2]);
        packet.truncate(packet.len() - 3);
        let answer = parse_response(&packet, 7, "web.test", Qtype::A).unwrap();
        assert!(answer.truncated);
        assert_eq!(ips(&answer), "10.0.0.1");
        // Without TC, the same cut is an error.
        packet[2] &= !0x02;
        assert_eq!(parse_response(&packet, 7, "web.test", Qtype::A), Err(Error::Short));
    }

    #[test]
    fn answers_to_other_questions_are_refused() {
        let mut packet = header(7, RESPONSE, [1, 0, 0, 0]);
        question(&mut packet, "web.test", TYPE_A);
        assert_eq!(parse_response(&packet, 8, "web.test", Qtype::A), Err(Error::WrongId(7)));
        assert_eq!(parse_response(&packet, 7, "web.test", Qtype::Aaaa), Err(Error::QuestionMismatch));
        assert_eq!(parse_response(&packet, 7, "web.test.x", Qtype::A), Err(Error::QuestionMismatch));
        assert_eq!(parse_response(&packet, 7, "eb.test", Qtype::A), Err(Error::QuestionMismatch));
        let mut query = packet.clone();
        query[2] &= 0x7F;
        assert_eq!(parse_response(&query, 7, "web.test", Qtype::A), Err(Error::NotAResponse));
        let mut status = packet.clone();
        status[2] |= 2 << 3;
        assert_eq!(parse_response(&status, 7, "web.test", Qtype::A), Err(Error::Opcode(2)));
        let mut two = packet.clone();
        two[5] = 2;
        assert_eq!(parse_response(&two, 7, "web.test", Qtype::A), Err(Error::QuestionMismatch));
        let mut chaos = packet;
        let last = chaos.len() - 1;
        chaos[last] = 3;
        assert_eq!(parse_response(&chaos, 7, "web.test", Qtype::A), Err(Error::QuestionMismatch));
    }

    #[test]
    fn a_compressed_question_is_followed_backwards_only() {
        // The question name is "web" + a pointer to "test" placed in... nothing before it but the
        // header: a pointer into the header is backwards, and reads the header's bytes as labels.
        let mut packet = header(0x0004, RESPONSE, [1, 0, 0, 0]);
        // Header bytes 0..2 are 00 04: a root label at 0, so a pointer to 0 is the empty name.
        packet.extend_from_slice(b"\x03web\xC0\x00");
        packet.extend_from_slice(&[0, 1, 0, 1]);
        assert_eq!(parse_response(&packet, 4, "web", Qtype::A).unwrap().rcode, NOERROR);
        // A pointer to itself, or forwards: refused.
        let mut packet = header(7, RESPONSE, [1, 0, 0, 0]);
        packet.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert_eq!(parse_response(&packet, 7, "web", Qtype::A), Err(Error::BadName));
        let mut packet = header(7, RESPONSE, [1, 0, 0, 0]);
        packet.extend_from_slice(&[0xC0, 14, 0, 3, b'w', b'e', b'b', 0, 0, 1, 0, 1]);
        assert_eq!(parse_response(&packet, 7, "web", Qtype::A), Err(Error::BadName));
    }

    #[test]
    fn pointer_loops_end_in_an_error() {
        // Label "ab" then a pointer back to it: backwards, but a loop. The pointer must point
        // before the start of the part being read, so the second visit is refused.
        let mut packet = header(7, RESPONSE, [1, 0, 0, 0]);
        packet.extend_from_slice(b"\x02ab\xC0\x0C");
        packet.extend_from_slice(&[0, 1, 0, 1]);
        assert_eq!(parse_response(&packet, 7, "ab.ab", Qtype::A), Err(Error::BadName));
        // Two names pointing at each other, reached from an answer: owner names are skipped, not
        // followed, so the answer is read (and its address found).
        let mut packet = header(7, RESPONSE, [1, 1, 0, 0]);
        question(&mut packet, "web", TYPE_A);
        record(&mut packet, &[0xC0, 0xFF], TYPE_A, CLASS_IN, &[10, 0, 0, 1]);
        assert_eq!(ips(&parse_response(&packet, 7, "web", Qtype::A).unwrap()), "10.0.0.1");
        // A long chain of backward pointers is cut at MAX_POINTERS.
        let mut packet = header(7, RESPONSE, [1, 0, 0, 0]);
        let start = packet.len();
        packet.push(0);
        for i in 0..20 {
            let target = start + 2 * i - if i == 0 { 0 } else { 1 };
            packet.extend_from_slice(&[0xC0, target as u8]);
        }
        let qname_at = packet.len() - 2;
        packet.extend_from_slice(&[0, 1, 0, 1]);
        let mut cursor = Cursor { bytes: &packet, pos: qname_at };
        assert_eq!(read_name(&packet, &mut cursor), Err(Error::BadName));
    }

    #[test]
    fn malformed_lengths_are_errors_not_panics() {
        let mut good = header(7, RESPONSE, [1, 1, 0, 0]);
        question(&mut good, "web.test", TYPE_A);
        record(&mut good, &AT_QNAME, TYPE_A, CLASS_IN, &[10, 0, 0, 1]);
        // Every prefix of a good answer, and every single-byte change of it.
        for len in 0..good.len() {
            assert!(parse_response(&good[..len], 7, "web.test", Qtype::A).is_err(), "prefix {len}");
        }
        for at in 0..good.len() {
            for value in [0x00, 0x01, 0x3F, 0x40, 0x80, 0xC0, 0xFF] {
                let mut bad = good.clone();
                bad[at] = value;
                let _ = parse_response(&bad, 7, "web.test", Qtype::A);
            }
        }
        // An rdlength past the end; a label past the end; a reserved label type.
        let mut bad = good.clone();
        let rdlength_at = bad.len() - 6;
        bad[rdlength_at..rdlength_at + 2].copy_from_slice(&600u16.to_be_bytes());
        assert_eq!(parse_response(&bad, 7, "web.test", Qtype::A), Err(Error::Short));
        let mut bad = header(7, RESPONSE, [1, 0, 0, 0]);
        bad.extend_from_slice(b"\x3Fweb");
        assert_eq!(parse_response(&bad, 7, "web", Qtype::A), Err(Error::Short));
        let mut bad = header(7, RESPONSE, [1, 0, 0, 0]);
        bad.extend_from_slice(&[0x41, 0, 0, 1, 0, 1]);
        assert_eq!(parse_response(&bad, 7, "web", Qtype::A), Err(Error::LabelType(0x41)));
        // More answers announced than present.
        let mut bad = good;
        bad[7] = 200;
        assert_eq!(parse_response(&bad, 7, "web.test", Qtype::A), Err(Error::Short));
    }

    #[test]
    fn the_answer_to_a_built_query_parses() {
        let mut packet = build_query(0xBEEF, "svc.demo.test", Qtype::A).unwrap();
        packet[2] |= 0x80; // QR
        packet[7] = 1;
        record(&mut packet, &AT_QNAME, TYPE_A, CLASS_IN, &[127, 0, 0, 5]);
        assert_eq!(ips(&parse_response(&packet, 0xBEEF, "SVC.demo.test.", Qtype::A).unwrap()), "127.0.0.5");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Anything after a plausible header and question: no panic, and every address found
        /// comes from the input.
        #[test]
        fn parse_response_never_panics(
            tail in prop::collection::vec(prop_oneof![any::<u8>(), prop::sample::select(vec![0u8, 1, 4, 12, 16, 28, 0xC0])], 0..200),
            flags in any::<u16>(),
            counts in any::<[u8; 4]>(),
            raw in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut packet = header(7, flags | FLAG_QR, counts.map(u16::from));
            question(&mut packet, "web.test", TYPE_A);
            packet.extend_from_slice(&tail);
            if let Ok(answer) = parse_response(&packet, 7, "web.test", Qtype::A) {
                prop_assert!(answer.addresses.len() <= packet.len() / 4);
            }
            let _ = parse_response(&raw, 7, "web.test", Qtype::A);
            let _ = parse_response(&tail, u16::from_be_bytes([tail.first().copied().unwrap_or(0), tail.get(1).copied().unwrap_or(0)]), "web.test", Qtype::Aaaa);
        }
    }
}
