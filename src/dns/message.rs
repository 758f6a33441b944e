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
