//! Decoding of PostgreSQL's `pgoutput` messages (protocol version 1, text values), as the
//! replication stream carries them in its `XLogData` frames: one message per row.

use std::collections::HashMap;
use std::sync::Arc;

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum DecodeError {
    #[error("message ends early")]
    Truncated,
    #[error("unknown message type {0:?}")]
    UnknownMessage(char),
    #[error("unknown tuple marker {0:?}")]
    UnknownTuple(char),
    #[error("a string is not UTF-8")]
    NotUtf8,
    #[error("a change names relation {0}, which no relation message described")]
    UnknownRelation(u32),
}

/// A column value as pgoutput sends it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A TOASTed value that the change did not touch (updates only).
    Unchanged,
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub id: u32,
    pub namespace: String,
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Begin {
        final_lsn: u64,
        xid: u32,
    },
    Commit {
        commit_lsn: u64,
        end_lsn: u64,
    },
    Relation(Relation),
    Insert {
        relation: u32,
        new: Vec<Value>,
    },
    Update {
        relation: u32,
        new: Vec<Value>,
    },
    Delete {
        relation: u32,
        old: Vec<Value>,
    },
    Truncate {
        relations: Vec<u32>,
    },
    /// A logical decoding message (`pg_logical_emit_message`).
    Logical {
        prefix: String,
        content: Vec<u8>,
    },
    /// Origin and type messages: nothing this server needs.
    Other,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().unwrap_or([0; 2]),
        ))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().unwrap_or([0; 8]),
        ))
    }

    fn cstr(&mut self) -> Result<String, DecodeError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Truncated)?;
        let s = std::str::from_utf8(&self.buf[..end]).map_err(|_| DecodeError::NotUtf8)?;
        self.buf = &self.buf[end + 1..];
        Ok(s.to_string())
    }

    fn tuple(&mut self) -> Result<Vec<Value>, DecodeError> {
        let n = self.u16()?;
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            out.push(match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    let bytes = self.take(len)?;
                    Value::Text(
                        std::str::from_utf8(bytes)
                            .map_err(|_| DecodeError::NotUtf8)?
                            .to_string(),
                    )
                }
                other => return Err(DecodeError::UnknownTuple(other as char)),
            });
        }
        Ok(out)
    }
}

pub fn decode(data: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { buf: data };
    let kind = r.u8()?;
    Ok(match kind {
        b'B' => {
            let final_lsn = r.u64()?;
            let _commit_time = r.u64()?;
            let xid = r.u32()?;
            Message::Begin { final_lsn, xid }
        }
        b'C' => {
            let _flags = r.u8()?;
            let commit_lsn = r.u64()?;
            let end_lsn = r.u64()?;
            Message::Commit {
                commit_lsn,
                end_lsn,
            }
        }
        b'R' => {
            let id = r.u32()?;
            let namespace = r.cstr()?;
            let name = r.cstr()?;
            let _identity = r.u8()?;
            let n = r.u16()?;
            let mut columns = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let _flags = r.u8()?;
                columns.push(r.cstr()?);
                let _type = r.u32()?;
                let _modifier = r.u32()?;
            }
            Message::Relation(Relation {
                id,
                namespace,
                name,
                columns,
            })
        }
        b'I' => {
            let relation = r.u32()?;
            let _new = r.u8()?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut marker = r.u8()?;
            if marker == b'K' || marker == b'O' {
                r.tuple()?;
                marker = r.u8()?;
            }
            if marker != b'N' {
                return Err(DecodeError::UnknownTuple(marker as char));
            }
            Message::Update {
                relation,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let _marker = r.u8()?;
            Message::Delete {
                relation,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.u32()?;
            let _options = r.u8()?;
            let mut relations = Vec::with_capacity(n as usize);
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            Message::Truncate { relations }
        }
        b'M' => {
            let _transactional = r.u8()?;
            let _lsn = r.u64()?;
            let prefix = r.cstr()?;
            let len = r.u32()? as usize;
            Message::Logical {
                prefix,
                content: r.take(len)?.to_vec(),
            }
        }
        b'O' | b'Y' => Message::Other,
        other => return Err(DecodeError::UnknownMessage(other as char)),
    })
}

/// Relations described so far, so that a change's values can be read by column name.
#[derive(Default)]
pub struct Relations(HashMap<u32, Arc<Relation>>);

impl Relations {
    pub fn learn(&mut self, relation: Relation) {
        self.0.insert(relation.id, Arc::new(relation));
    }

    pub fn get(&self, id: u32) -> Result<&Arc<Relation>, DecodeError> {
        self.0.get(&id).ok_or(DecodeError::UnknownRelation(id))
    }
}

impl Relation {
    /// The text of column `name` in `values`, if the column exists and is not null.
    pub fn text<'v>(&self, values: &'v [Value], name: &str) -> Option<&'v str> {
        let i = self.columns.iter().position(|c| c == name)?;
        match values.get(i)? {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    #[test]
    fn decodes_a_relation_and_an_insert() {
        let mut rel = vec![b'R'];
        rel.extend_from_slice(&42u32.to_be_bytes());
        cstr(&mut rel, "public");
        cstr(&mut rel, "events");
        rel.push(b'd');
        rel.extend_from_slice(&2u16.to_be_bytes());
        for (name, oid) in [("tenant_id", 2950u32), ("name", 25)] {
            rel.push(0);
            cstr(&mut rel, name);
            rel.extend_from_slice(&oid.to_be_bytes());
            rel.extend_from_slice(&u32::MAX.to_be_bytes());
        }
        let Message::Relation(relation) = decode(&rel).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!(relation.columns, vec!["tenant_id", "name"]);

        let mut ins = vec![b'I'];
        ins.extend_from_slice(&42u32.to_be_bytes());
        ins.push(b'N');
        ins.extend_from_slice(&2u16.to_be_bytes());
        ins.push(b'n');
        ins.push(b't');
        ins.extend_from_slice(&5u32.to_be_bytes());
        ins.extend_from_slice(b"login");
        let Message::Insert { relation: id, new } = decode(&ins).unwrap() else {
            panic!("not an insert")
        };
        assert_eq!(id, 42);
        assert_eq!(relation.text(&new, "name"), Some("login"));
        assert_eq!(relation.text(&new, "tenant_id"), None);
        assert_eq!(relation.text(&new, "missing"), None);
        // Cut anywhere, it is an error, never a panic.
        for n in 0..ins.len() {
            assert!(decode(&ins[..n]).is_err(), "prefix of {n} bytes");
        }
        assert_eq!(decode(b"Z"), Err(DecodeError::UnknownMessage('Z')));
    }
}
