//! TensorBoard event files: every run's `tb/` holds its per-epoch scalars, readable by
//! `tensorboard --logdir runs/` and by `wandb sync --sync-tensorboard`.
//!
//! The file is TensorFlow's TFRecord container of `tensorboard.Event` protocol buffers. The
//! three messages needed here are declared by hand (see [`Event`]) rather than generated from
//! the `.proto` files, so the build needs no `protoc`; their field numbers are those of
//! `tensorboard/compat/proto/event.proto` and `summary.proto`.
//!
//! The whole file is rewritten from the run's history after every epoch, so a resumed run ends
//! with exactly the events an uninterrupted run would have: one per epoch, no duplicates.

use super::metrics::EpochMetrics;
use crate::atomic::write_atomic;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The event file's version marker, the first record of every TensorBoard event file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Name of the event file inside `tb/`. TensorBoard only reads files whose name contains
/// `tfevents`; the name is fixed (no host name or time) so that each rewrite replaces it.
pub const EVENTS_FILE: &str = "events.out.tfevents.0.rethink";

/// `tensorboard.Event` (event.proto), reduced to the fields rethink writes.
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    /// Timestamp of the event, in seconds.
    #[prost(double, tag = "1")]
    wall_time: f64,
    /// Global step of the event.
    #[prost(int64, tag = "2")]
    step: i64,
    /// What the event carries (`oneof what`).
    #[prost(oneof = "What", tags = "3, 5")]
    what: Option<What>,
}

/// `oneof what` of `tensorboard.Event`: the two members rethink writes.
#[derive(Clone, PartialEq, prost::Oneof)]
enum What {
    /// `string file_version = 3`.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// `Summary summary = 5`.
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorboard.Summary` (summary.proto): a set of named values.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    /// `repeated Value value = 1`.
    #[prost(message, repeated, tag = "1")]
    value: Vec<Value>,
}

/// `tensorboard.Summary.Value`, reduced to a tag and a scalar.
#[derive(Clone, PartialEq, prost::Message)]
struct Value {
    /// `string tag = 1`.
    #[prost(string, tag = "1")]
    tag: String,
    /// `float simple_value = 2` (a member of `oneof value`).
    #[prost(oneof = "Scalar", tags = "2")]
    value: Option<Scalar>,
}

/// `oneof value` of `tensorboard.Summary.Value`: only the legacy scalar, which TensorBoard's
/// scalar dashboard and W&B's TensorBoard sync both read.
#[derive(Clone, PartialEq, prost::Oneof)]
enum Scalar {
    /// `float simple_value = 2`.
    #[prost(float, tag = "2")]
    SimpleValue(f32),
}

/// Path of the event file of the run in `run_dir`: `run_dir/tb/events.out.tfevents.0.rethink`.
pub fn events_path(run_dir: &Path) -> PathBuf {
    run_dir.join("tb").join(EVENTS_FILE)
}

/// Rewrites the run's event file (creating `run_dir/tb/`) atomically from its history: see
/// [`encode_events`] for what it holds.
pub fn write_events(run_dir: &Path, history: &[EpochMetrics]) -> Result<()> {
    let path = events_path(run_dir);
    let dir = path.parent().expect("the event file lies in tb/");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_atomic(&path, &encode_events(history))
}

/// The tags and values of one epoch's scalars, in the order they are written: the train and
/// validation loss and accuracy, the learning rate, and — only when the run measures them —
/// the train accuracy on the clean and on the corrupted examples.
pub fn epoch_scalars(m: &EpochMetrics) -> Vec<(&'static str, f64)> {
    let mut scalars = vec![
        ("loss/train", m.train_loss),
        ("loss/val", m.val_loss),
        ("accuracy/train", m.train_acc),
        ("accuracy/val", m.val_acc),
        ("learning_rate", m.lr),
    ];
    if let Some(clean) = m.train_acc_clean {
        scalars.push(("accuracy/train_clean", clean));
    }
    if let Some(corrupted) = m.train_acc_corrupted {
        scalars.push(("accuracy/train_corrupted", corrupted));
    }
    scalars
}

/// The whole event file for a run's history: the `brain.Event:2` version record, then one
/// summary event per epoch holding [`epoch_scalars`] (as float32, TensorBoard's scalar type)
/// at step = the epoch's cumulative SGD step count ([`EpochMetrics::steps`]).
///
/// Every event needs a wall time; to keep the file a pure function of the history (so a
/// resumed run rewrites the same bytes an uninterrupted one would), it is the cumulative sum
/// of [`EpochMetrics::seconds`] up to the end of the epoch, i.e. seconds since the run's start
/// rather than since the Unix epoch; the version record has wall time 0. TensorBoard's
/// "relative" time axis is therefore exact; its "wall" axis shows dates in January 1970.
pub fn encode_events(history: &[EpochMetrics]) -> Vec<u8> {
    let mut out = Vec::new();
    let header = Event { wall_time: 0.0, step: 0, what: Some(What::FileVersion(FILE_VERSION.into())) };
    frame_record(&prost::Message::encode_to_vec(&header), &mut out);
    let mut wall_time = 0.0;
    for m in history {
        wall_time += m.seconds;
        let value = epoch_scalars(m)
            .into_iter()
            .map(|(tag, v)| Value { tag: tag.into(), value: Some(Scalar::SimpleValue(v as f32)) })
            .collect();
        let event = Event {
            wall_time,
            step: i64::try_from(m.steps).expect("step count fits in i64"),
            what: Some(What::Summary(Summary { value })),
        };
        frame_record(&prost::Message::encode_to_vec(&event), &mut out);
    }
    out
}

/// Appends one TFRecord to `out`: the data's length as u64 little-endian, the
/// [`masked_crc32c`] of those 8 bytes, the data, and the masked CRC of the data (u32
/// little-endian each). Readers check both CRCs.
pub fn frame_record(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

/// TFRecord's masked CRC32C (Castagnoli) of `bytes`: the CRC rotated right by 15 bits plus
/// `0xa282ead8` (wrapping). TensorFlow masks CRCs stored next to data they cover, since
/// computing the CRC of a string that holds CRCs is otherwise error-prone.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes).rotate_right(15).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Splits a TFRecord file into its records' data, checking lengths and both CRCs.
    fn parse_records(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut records = Vec::new();
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        while !bytes.is_empty() {
            let len_bytes = &bytes[..8];
            assert_eq!(u32_at(bytes, 8), masked_crc32c(len_bytes), "length CRC");
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let data = &bytes[12..12 + len];
            assert_eq!(u32_at(bytes, 12 + len), masked_crc32c(data), "data CRC");
            records.push(data.to_vec());
            bytes = &bytes[16 + len..];
        }
        records
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn epoch(epoch: usize, partial: bool) -> EpochMetrics {
        EpochMetrics {
            epoch,
            lr: 0.05,
            train_loss: 2.0 - epoch as f64 * 0.1,
            train_acc: 10.0 + epoch as f64,
            train_acc_corrupted: partial.then_some(9.5),
            train_acc_clean: partial.then_some(30.25),
            val_loss: 2.2,
            val_acc: 11.0,
            seconds: 1.25,
            steps: 5 * (epoch + 1),
        }
    }

    #[test]
    fn masked_crc_matches_tensorflow() {
        // Expected values from tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c.
        assert_eq!(masked_crc32c(b""), 0xa282_ead8);
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283, "CRC32C check value");
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
        assert_eq!(masked_crc32c(&24u64.to_le_bytes()), 0x224b_7fa3);
    }

    #[test]
    fn records_match_tensorboards_own_encoding() {
        // Framed `event_pb2.Event(...).SerializeToString()`, computed with TensorBoard 2.21.
        let header = hex("0f000000000000006d532b091a0d627261696e2e4576656e743a32fc985129");
        let scalar = hex(concat!(
            "200000000000000029eda95009000000000000f83f10082a130a110a0a6c6f73732f747261696e",
            "1500001040045a1ea7"
        ));
        assert_eq!(encode_events(&[]), header);
        let event = Event {
            wall_time: 1.5,
            step: 8,
            what: Some(What::Summary(Summary {
                value: vec![Value { tag: "loss/train".into(), value: Some(Scalar::SimpleValue(2.25)) }],
            })),
        };
        let mut framed = Vec::new();
        frame_record(&event.encode_to_vec(), &mut framed);
        assert_eq!(framed, scalar);
    }

    #[test]
    fn round_trips_one_event_per_epoch() {
        let history: Vec<_> = (0..3).map(|e| epoch(e, e > 0)).collect();
        let records = parse_records(&encode_events(&history));
        assert_eq!(records.len(), 4);
        let header = Event::decode(records[0].as_slice()).unwrap();
        assert_eq!(header.what, Some(What::FileVersion(FILE_VERSION.into())));
        for (m, data) in history.iter().zip(&records[1..]) {
            let event = Event::decode(data.as_slice()).unwrap();
            assert_eq!(event.step, m.steps as i64);
            assert_eq!(event.wall_time, 1.25 * (m.epoch + 1) as f64);
            let Some(What::Summary(summary)) = event.what else { panic!("not a summary: {event:?}") };
            let got: Vec<(String, f32)> = summary
                .value
                .into_iter()
                .map(|v| match v.value {
                    Some(Scalar::SimpleValue(x)) => (v.tag, x),
                    None => panic!("no value for {}", v.tag),
                })
                .collect();
            let want: Vec<(String, f32)> =
                epoch_scalars(m).into_iter().map(|(t, v)| (t.to_string(), v as f32)).collect();
            assert_eq!(got, want);
            assert_eq!(got.len(), if m.epoch > 0 { 7 } else { 5 }, "clean/corrupted only when present");
        }
    }

    #[test]
    fn write_events_creates_tb_and_rewrites_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let history: Vec<_> = (0..2).map(|e| epoch(e, true)).collect();
        write_events(dir.path(), &history).unwrap();
        write_events(dir.path(), &history[..1]).unwrap();
        let bytes = std::fs::read(events_path(dir.path())).unwrap();
        assert_eq!(bytes, encode_events(&history[..1]));
        assert_eq!(std::fs::read_dir(dir.path().join("tb")).unwrap().count(), 1, "no temp file left");
    }
}
