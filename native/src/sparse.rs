//! Where a sparse file's data is (lseek SEEK_DATA / SEEK_HOLE), so that a backup does not
//! read its holes (src/chunking/batcher.ts, openFileReader).

/// The next region of `fd` at or after `offset` that holds data: (start, end). (-1, -1) when
/// no data follows `offset`; (-errno, -errno) on a failure. A file system without hole
/// support answers as if the whole file were data.
pub fn data_region(fd: i32, offset: i64) -> (i64, i64) {
    extern "C" {
        fn lseek(fd: std::ffi::c_int, offset: i64, whence: std::ffi::c_int) -> i64;
    }
    const SEEK_DATA: std::ffi::c_int = 3;
    const SEEK_HOLE: std::ffi::c_int = 4;
    const ENXIO: i32 = 6;
    let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(5) as i64;
    // SAFETY: plain system calls on a descriptor; they touch no memory of ours. The file
    // position they move is not used: every read of the backup names its offset.
    let start = unsafe { lseek(fd, offset, SEEK_DATA) };
    if start < 0 {
        let e = errno();
        return if e == ENXIO as i64 { (-1, -1) } else { (-e, -e) };
    }
    let end = unsafe { lseek(fd, start, SEEK_HOLE) };
    if end < 0 {
        let e = errno();
        return (-e, -e);
    }
    (start, end)
}

#[cfg(test)]
mod data_region_tests {
    use super::data_region;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::io::AsRawFd;

    #[test]
    fn finds_data_between_holes() {
        let path = std::env::temp_dir().join(format!("chunkyard-data-region-{}", std::process::id()));
        let mut f = std::fs::File::create(&path).unwrap();
        f.set_len(8 << 20).unwrap();
        f.seek(SeekFrom::Start(3 << 20)).unwrap();
        f.write_all(&[7u8; 5000]).unwrap();
        f.sync_all().unwrap();
        let fd = f.as_raw_fd();
        let (start, end) = data_region(fd, 0);
        // A file system without hole support calls the whole file data; with it, the data
        // region covers the written bytes (in whole blocks) and no more than a few blocks.
        assert!(start <= 3 << 20 && end >= (3 << 20) + 5000, "{start}..{end}");
        if start > 0 {
            assert!(end - start < 1 << 20, "{start}..{end}");
            assert_eq!(data_region(fd, end), (-1, -1), "nothing after the last data");
        }
        assert_eq!(data_region(fd, 8 << 20), (-1, -1), "nothing at the end");
        drop(f);
        std::fs::remove_file(&path).unwrap();
        let bad = data_region(-1, 0);
        assert!(bad.0 < 0 && bad.0 != -1, "a bad descriptor is an errno: {bad:?}");
    }
}
