//! One body's compressor, fed in pieces. Each piece that is not the last
//! is flushed: a streamed body reaches the client as the upstream sends
//! it, not when the compressor's window fills. The last piece ends the
//! stream properly (a brotli stream that is only flushed is, to a strict
//! decoder, truncated).

use std::io::{self, Write};

use bytes::Bytes;

use super::Encoding;

pub struct Encoder(Option<Inner>);

/// A response body on its way out compressed: its coding and compressor.
pub struct Compressing {
    pub coding: Encoding,
    pub encoder: Encoder,
}

enum Inner {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// The window (log2 of its size) of brotli and zstd: 1 MiB keeps each
/// stream's memory bounded whatever the level.
const WINDOW_LOG: u32 = 20;

impl Encoder {
    pub fn new(coding: Encoding, level: u32) -> io::Result<Encoder> {
        let out = Vec::new();
        let inner = match coding {
            Encoding::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(level.min(9)),
            )),
            Encoding::Brotli => Inner::Brotli(Box::new(brotli::CompressorWriter::new(
                out,
                16 * 1024,
                level.min(11),
                WINDOW_LOG,
            ))),
            Encoding::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, level.min(22) as i32)?;
                // High levels would otherwise size the window for huge inputs.
                e.window_log(WINDOW_LOG)?;
                Inner::Zstd(e)
            }
        };
        Ok(Encoder(Some(inner)))
    }

    /// Compresses `input`, and returns what is ready to go: all of it when
    /// `end` closes the stream. An encoder that has ended, or failed, has
    /// nothing more to give.
    pub fn encode(&mut self, input: &[u8], end: bool) -> io::Result<Bytes> {
        let Some(inner) = self.0.as_mut() else {
            return Err(io::Error::other("the compressed stream has already ended"));
        };
        let written = match inner {
            Inner::Gzip(e) => write(e, input, end),
            Inner::Brotli(e) => write(e.as_mut(), input, end),
            Inner::Zstd(e) => write(e, input, end),
        };
        if let Err(e) = written {
            self.0 = None;
            return Err(e);
        }
        if !end {
            let out = match inner {
                Inner::Gzip(e) => std::mem::take(e.get_mut()),
                Inner::Brotli(e) => std::mem::take(e.get_mut()),
                Inner::Zstd(e) => std::mem::take(e.get_mut()),
            };
            return Ok(Bytes::from(out));
        }
        let out = match self.0.take().expect("checked") {
            Inner::Gzip(e) => e.finish()?,
            Inner::Brotli(e) => e.into_inner(),
            Inner::Zstd(e) => e.finish()?,
        };
        Ok(Bytes::from(out))
    }
}

/// Writes a piece; one that is not the last is flushed after it (the last
/// is finished by the caller, which flushes too).
fn write(w: &mut impl Write, input: &[u8], end: bool) -> io::Result<()> {
    w.write_all(input)?;
    if !end && !input.is_empty() {
        w.flush()?;
    }
    Ok(())
}

/// A whole body, compressed in one go.
pub fn compress(coding: Encoding, level: u32, body: &[u8]) -> io::Result<Bytes> {
    Encoder::new(coding, level)?.encode(body, true)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    pub(crate) fn decode(coding: Encoding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Encoding::Gzip => flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap(),
            Encoding::Brotli => brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .unwrap(),
            Encoding::Zstd => zstd::stream::read::Decoder::new(data)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap(),
        };
        out
    }

    #[test]
    fn pieces_decode_back_to_the_body_and_each_is_flushed() {
        let body: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("<p>line {}</p>\n", i % 977).into_bytes())
            .collect();
        for coding in Encoding::ALL {
            let mut e = Encoder::new(coding, 5).unwrap();
            let mut out = Vec::new();
            for piece in body.chunks(7000) {
                let got = e.encode(piece, false).unwrap();
                // Flushed: the piece can be decoded so far, so it is not empty.
                assert!(!got.is_empty(), "{coding:?}");
                out.extend_from_slice(&got);
            }
            out.extend_from_slice(&e.encode(&[], true).unwrap());
            assert_eq!(decode(coding, &out), body, "{coding:?}");
            assert!(out.len() < body.len() / 4, "{coding:?}: {}", out.len());
            assert!(e.encode(b"more", false).is_err(), "{coding:?}");
            let whole = compress(coding, 5, &body).unwrap();
            assert_eq!(decode(coding, &whole), body, "{coding:?}");
        }
    }

    #[test]
    fn an_empty_body_is_a_valid_stream() {
        for coding in Encoding::ALL {
            let out = compress(coding, 3, b"").unwrap();
            assert_eq!(decode(coding, &out), b"", "{coding:?}");
        }
    }
}
