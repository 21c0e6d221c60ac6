//! Writing one large JSON object without holding it in memory: the reports of `verify --json`,
//! `stat --json` and `salvage --json`, and the trailer of `export-jsonl`, whose damage lists grow
//! with the damage in the log.

use serde::ser::{Error as _, Serialize, SerializeSeq as _, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// One JSON object, written as one line, whose long lists become values one element at a time
/// while it is written.
///
/// A log damaged in every tenth record has a damage list as long as a tenth of its records; as
/// a `Value` each element costs about 2 KiB, so `verify --json` on a 500 MiB log needed
/// 120 MiB for that list alone. A `Doc` holds only the small fields as values. Its keys come
/// out sorted, which is the order `serde_json::Map` keeps, so its bytes equal those of the same
/// object built whole with `json!` (a test below holds both to that).
pub struct Doc<'a> {
    fields: BTreeMap<String, Field<'a>>,
}

enum Field<'a> {
    Value(Value),
    Each(Box<dyn Fn() -> Box<dyn Iterator<Item = Value> + 'a> + 'a>),
    TryEach(Box<dyn Fn() -> Box<dyn Iterator<Item = io::Result<Value>> + 'a> + 'a>),
}

impl<'a> Doc<'a> {
    /// A document of the fields of `object`; anything but an object gives an empty document.
    pub fn new(object: Value) -> Doc<'a> {
        let mut doc = Doc {
            fields: BTreeMap::new(),
        };
        doc.merge(object);
        doc
    }

    /// Adds (or replaces) the fields of `object`; anything but an object adds nothing.
    pub fn merge(&mut self, object: Value) {
        if let Value::Object(map) = object {
            let fields = map.into_iter().map(|(k, v)| (k, Field::Value(v)));
            self.fields.extend(fields);
        }
    }

    /// Adds a list whose elements `items` makes, afresh each time the document is written.
    pub fn each<I>(mut self, key: &str, items: impl Fn() -> I + 'a) -> Doc<'a>
    where
        I: Iterator<Item = Value> + 'a,
    {
        let make = move || Box::new(items()) as Box<dyn Iterator<Item = Value> + 'a>;
        self.fields
            .insert(key.to_string(), Field::Each(Box::new(make)));
        self
    }

    /// [`Doc::each`] for a list read from somewhere that can fail (a spool file): the first
    /// error ends the write with that error.
    pub fn try_each<I>(mut self, key: &str, items: impl Fn() -> I + 'a) -> Doc<'a>
    where
        I: Iterator<Item = io::Result<Value>> + 'a,
    {
        let make = move || Box::new(items()) as Box<dyn Iterator<Item = io::Result<Value>> + 'a>;
        self.fields
            .insert(key.to_string(), Field::TryEach(Box::new(make)));
        self
    }

    /// Writes the document and a newline. `serde_json` writes in small pieces, so `out` should
    /// be buffered, as stdout (`Output`) and the export file are.
    ///
    /// # Errors
    /// The write error, unchanged (a broken pipe stays recognisable to `main`).
    pub fn write_line(&self, out: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *out, self).map_err(io::Error::from)?;
        out.write_all(b"\n")
    }
}

impl Serialize for Doc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(&self.fields)
    }
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Value(v) => v.serialize(s),
            Field::Each(make) => s.collect_seq(make()),
            Field::TryEach(make) => {
                let mut seq = s.serialize_seq(None)?;
                for item in make() {
                    seq.serialize_element(&item.map_err(S::Error::custom)?)?;
                }
                seq.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::Cell;
    use std::rc::Rc;

    fn written(doc: &Doc<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        doc.write_line(&mut out).unwrap();
        out
    }

    #[test]
    fn a_doc_writes_the_bytes_of_the_same_object_built_whole() {
        let items = [3u64, 1, 2];
        let small = json!({"zeta": null, "a": {"y": 1, "b": [true]}, "é": "x\"\n", "B": 7});
        let mut doc = Doc::new(small)
            .each("a_list", || {
                items.iter().map(|n| json!({"n": n, "half": n / 2}))
            })
            .each("empty", std::iter::empty);
        doc.merge(json!({"zeta": "replaced", "added": -1}));
        doc.merge(json!("not an object"));
        let whole = json!({
            "zeta": "replaced", "a": {"y": 1, "b": [true]}, "é": "x\"\n", "B": 7, "added": -1,
            "a_list": [{"n": 3, "half": 1}, {"n": 1, "half": 0}, {"n": 2, "half": 1}],
            "empty": [],
        });
        let mut expected = serde_json::to_vec(&whole).unwrap();
        expected.push(b'\n');
        let got = written(&doc);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected)
        );
        assert_eq!(written(&doc), got, "a second write makes the lists afresh");
    }

    #[test]
    fn a_non_object_gives_an_empty_document() {
        assert_eq!(written(&Doc::new(json!([1, 2]))), b"{}\n");
    }

    /// A writer that counts what reached it.
    struct Counted(Rc<Cell<usize>>);

    impl Write for Counted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.set(self.0.get() + buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_long_list_reaches_the_writer_before_its_last_element_is_made() {
        let reached = Rc::new(Cell::new(0));
        let seen_when_last_made = Rc::new(Cell::new(None));
        let (r, s) = (Rc::clone(&reached), Rc::clone(&seen_when_last_made));
        let doc = Doc::new(json!({})).each("damage", move || {
            let (r, s) = (Rc::clone(&r), Rc::clone(&s));
            (0..10_000u32).map(move |i| {
                if i == 9_999 {
                    s.set(Some(r.get()));
                }
                json!({"detail": "a record whose checksum fails", "offset": i})
            })
        });
        doc.write_line(&mut Counted(Rc::clone(&reached))).unwrap();
        let before_last = seen_when_last_made
            .get()
            .expect("the last element was made");
        assert!(
            before_last > 64 * 1024,
            "only {before_last} of {} bytes were written before the last element was made",
            reached.get()
        );
    }

    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn a_fallible_list_writes_as_a_list_and_its_error_ends_the_write() {
        let fine = Doc::new(json!({"k": 1})).try_each("n", || (1..=3).map(|n| Ok(json!(n))));
        assert_eq!(written(&fine), b"{\"k\":1,\"n\":[1,2,3]}\n");
        let failing = Doc::new(json!({})).try_each("n", || {
            [
                Ok(json!(1)),
                Err(io::Error::other("spool unreadable")),
                Ok(json!(3)),
            ]
            .into_iter()
        });
        let err = failing.write_line(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("spool unreadable"), "{err}");
    }

    #[test]
    fn a_write_error_comes_back_as_the_same_io_error() {
        let items: Vec<u32> = (0..100_000).collect();
        let doc = Doc::new(json!({"k": 1})).each("n", || items.iter().map(|n| json!(n)));
        let err = doc.write_line(&mut Broken).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
