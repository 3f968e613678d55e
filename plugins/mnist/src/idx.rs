//! Reading the IDX format of MNIST-style files (LeCun et al.), raw or gzip-compressed.
//!
//! A file is a big-endian header (magic `0x0000_08_NN` where 08 is unsigned bytes and NN the
//! number of dimensions, then one u32 per dimension) followed by the values.

use std::io::Read;
use std::path::{Path, PathBuf};

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    /// Dimensions.
    pub dims: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<u8>,
}

/// Finds `name` or `name.gz` in `dir`.
pub fn locate(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if raw.is_file() {
        Ok(raw)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        Err(format!("missing {} (or {}.gz)", raw.display(), name))
    }
}

/// Reads an IDX file, checking that it holds `expected_dims` dimensions of unsigned bytes and
/// exactly as many values as its header says. Gzip data is inflated no further than the header
/// inside it declares, so a small file cannot inflate into gigabytes.
pub fn read(path: &Path, expected_dims: usize) -> Result<Idx, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        inflate_declared(&bytes, expected_dims)
            .map_err(|e| format!("{}: corrupt gzip data: {e}", path.display()))?
    } else {
        bytes
    };
    parse(&bytes, expected_dims).map_err(|e| format!("{}: {e}", path.display()))
}

/// Inflates the header of the IDX data inside `gz`, then at most one byte more than the values
/// it declares (enough for [`parse`] to notice trailing data).
fn inflate_declared(gz: &[u8], expected_dims: usize) -> std::io::Result<Vec<u8>> {
    let mut decoder = flate2::read::GzDecoder::new(gz);
    let mut out = Vec::new();
    (&mut decoder)
        .take(4 + 4 * expected_dims as u64)
        .read_to_end(&mut out)?;
    let Ok((dims, _)) = header(&out, expected_dims) else {
        return Ok(out); // `parse` names what is wrong with the header
    };
    let values = dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
    let limit = values.map_or(1, |n| n.saturating_add(1));
    decoder.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// The dimensions in an IDX header and the header's length in bytes.
fn header(bytes: &[u8], expected_dims: usize) -> Result<(Vec<usize>, usize), String> {
    if bytes.len() < 4 {
        return Err("not an IDX file (shorter than its header)".into());
    }
    let (zero, kind, ndims) = (
        u16::from_be_bytes([bytes[0], bytes[1]]),
        bytes[2],
        bytes[3] as usize,
    );
    if zero != 0 || kind != 0x08 || ndims != expected_dims {
        let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        return Err(format!(
            "not an IDX file of {expected_dims}-D unsigned bytes (magic {magic:#010x}, expected {:#010x})",
            0x0800 + expected_dims
        ));
    }
    let header_len = 4 + 4 * ndims;
    if bytes.len() < header_len {
        return Err("truncated header".into());
    }
    let dims = bytes[4..header_len]
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    Ok((dims, header_len))
}

/// Parses IDX bytes.
pub fn parse(bytes: &[u8], expected_dims: usize) -> Result<Idx, String> {
    let (dims, header_len) = header(bytes, expected_dims)?;
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("the header's dimensions {dims:?} hold more values than memory"))?;
    let body = &bytes[header_len..];
    if body.len() != count {
        return Err(format!(
            "{} bytes of data, but the header {dims:?} needs {count} ({})",
            body.len(),
            if body.len() < count {
                "truncated file"
            } else {
                "trailing data"
            }
        ));
    }
    Ok(Idx {
        dims,
        data: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IDX file of `dims` with values `0, 1, 2, ...`.
    fn idx_bytes(dims: &[u32]) -> Vec<u8> {
        let mut out = vec![0, 0, 8, dims.len() as u8];
        dims.iter().for_each(|d| out.extend(d.to_be_bytes()));
        let n: u32 = dims.iter().product();
        out.extend((0..n).map(|i| (i % 251) as u8));
        out
    }

    #[test]
    fn parses_images_and_labels() {
        let images = parse(&idx_bytes(&[3, 2, 2]), 3).unwrap();
        assert_eq!(images.dims, vec![3, 2, 2]);
        assert_eq!(images.data, (0..12).collect::<Vec<u8>>());
        let labels = parse(&idx_bytes(&[5]), 1).unwrap();
        assert_eq!(labels.dims, vec![5]);
    }

    #[test]
    fn rejects_wrong_magic() {
        let mut bytes = idx_bytes(&[5]);
        bytes[2] = 0x0d; // float data
        assert!(parse(&bytes, 1).unwrap_err().contains("magic 0x00000d01"));
        // a labels file where images are expected
        assert!(parse(&idx_bytes(&[5]), 3)
            .unwrap_err()
            .contains("not an IDX file"));
    }

    #[test]
    fn rejects_truncated_and_padded_files() {
        let bytes = idx_bytes(&[4, 2, 2]);
        assert!(parse(&bytes[..bytes.len() - 1], 3)
            .unwrap_err()
            .contains("truncated file"));
        assert!(parse(&bytes[..10], 3)
            .unwrap_err()
            .contains("truncated header"));
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(parse(&padded, 3).unwrap_err().contains("trailing data"));
    }

    #[test]
    fn reads_gzip_files() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&idx_bytes(&[7])).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        assert_eq!(read(&path, 1).unwrap().dims, vec![7]);
        assert_eq!(locate(dir.path(), "labels").unwrap(), path);
        // padded gzip content is still refused after the bounded inflation
        let mut padded = idx_bytes(&[7]);
        padded.push(0);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&padded).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        assert!(read(&path, 1).unwrap_err().contains("trailing data"));
        assert!(locate(dir.path(), "images")
            .unwrap_err()
            .contains("missing"));
    }

    #[test]
    fn rejects_dimensions_whose_product_overflows() {
        let mut bytes = vec![0, 0, 8, 3];
        [u32::MAX, u32::MAX, u32::MAX]
            .iter()
            .for_each(|d| bytes.extend(d.to_be_bytes()));
        assert!(parse(&bytes, 3)
            .unwrap_err()
            .contains("more values than memory"));
    }

    #[test]
    fn inflates_no_further_than_the_header_declares() {
        use std::io::Write;
        // a 10-value labels header followed by 64 MiB of zeros: compresses to ~64 KiB
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&idx_bytes(&[10])).unwrap();
        gz.write_all(&vec![0u8; 64 << 20]).unwrap();
        let inflated = inflate_declared(&gz.finish().unwrap(), 1).unwrap();
        assert_eq!(inflated.len(), 8 + 10 + 1);
        assert!(parse(&inflated, 1).unwrap_err().contains("trailing data"));
    }
}
