//! A SQLite VFS, layered on the platform's own, that hands a write transaction's WAL frames to
//! the operating system in large writes instead of two small ones per page.
//!
//! Why: SQLite writes each WAL frame as two `pwrite`s (its 24-byte header, then the page). A
//! usage group of respack's dirties about 8,000 pages, so its commit was 16,000 system calls
//! before the `fsync`; on a 2-core VM those calls cost twice what copying the same bytes in
//! large writes does (`pwrite` of 8,000 frames: 42 ms one by one, 20 ms in 1 MiB pieces).
//!
//! What stays true: SQLite never sees a difference in what the file holds.
//! - A read of bytes still held is preceded by writing them out, so the connection reads back
//!   its own frames (a spilled page, a checkpoint) as it wrote them.
//! - `xSync`, `xTruncate`, `xFileSize`, `xFileControl` and `xClose` write everything out first:
//!   nothing is durable before it would have been, and an error in a deferred write is returned
//!   by the call that wrote it out, which fails the transaction as a failed write would have.
//! - A transaction's commit frame (its header names the database size, the only frames whose
//!   does) is written out together with everything before it as soon as its page arrives, so by
//!   the time SQLite publishes the commit to other connections (the wal-index), the frames are in
//!   the file, whatever the `synchronous` setting.
//!
//! Only the WAL is batched; the database file and everything else are the platform VFS's own
//! files, untouched.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

use crate::Error;

/// The VFS name a connection opens its database with (sqlx: `SqliteConnectOptions::vfs`) to
/// batch its WAL writes.
pub const BATCHED_WAL_VFS: &str = match NAME.to_str() {
    Ok(name) => name,
    Err(_) => panic!("the VFS name is ASCII"),
};
const NAME: &CStr = c"respack-batched-wal";

/// Bytes of frames held at most before they are written: the most the unix VFS writes in one
/// call (it masks a write's length to 17 bits; a longer one would come back short, reported as
/// a full disk), 31 frames of 4 KiB pages. Allocated on a connection's first WAL write (readers
/// never write the WAL) and kept while it is open.
const BUFFER_BYTES: usize = 0x1ffff;

/// The size of a WAL frame's header; SQLite writes nothing else of this size to the WAL.
const FRAME_HEADER_BYTES: usize = 24;

/// Registers the VFS (once per process; later calls return at once) and returns its name.
pub fn register_batched_wal_vfs() -> Result<&'static str, Error> {
    static REGISTERED: OnceLock<Result<(), Error>> = OnceLock::new();
    REGISTERED.get_or_init(register).clone().map(|()| BATCHED_WAL_VFS)
}

/// Writes the VFS has taken and the writes it made of them, over the process's life: the
/// difference is the system calls saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchedWalStats {
    pub writes_taken: u64,
    pub writes_made: u64,
}

static WRITES_TAKEN: AtomicU64 = AtomicU64::new(0);
static WRITES_MADE: AtomicU64 = AtomicU64::new(0);

pub fn batched_wal_stats() -> BatchedWalStats {
    BatchedWalStats {
        writes_taken: WRITES_TAKEN.load(Ordering::Relaxed),
        writes_made: WRITES_MADE.load(Ordering::Relaxed),
    }
}

fn register() -> Result<(), Error> {
    // SAFETY: `sqlite3_initialize` may be called any number of times; `sqlite3_vfs_find(NULL)`
    // returns the default VFS, which SQLite keeps for the life of the process.
    #[allow(unsafe_code)]
    let platform = unsafe {
        let code = ffi::sqlite3_initialize();
        if code != ffi::SQLITE_OK {
            return Err(Error { code, message: "SQLite failed to initialize".into() });
        }
        ffi::sqlite3_vfs_find(ptr::null())
    };
    if platform.is_null() {
        return Err(Error { code: ffi::SQLITE_ERROR, message: "SQLite has no default VFS".into() });
    }
    // SAFETY: `platform` is SQLite's default VFS, valid and unchanged for the process's life.
    #[allow(unsafe_code)]
    let (platform_file_size, max_pathname) = unsafe { ((*platform).szOsFile, (*platform).mxPathname) };
    let vfs = Box::leak(Box::new(ffi::sqlite3_vfs {
        // Version 2 (no system-call overrides): everything SQLite asks of a VFS for files.
        iVersion: 2,
        szOsFile: c_int::try_from(INNER_OFFSET).unwrap_or(c_int::MAX).saturating_add(platform_file_size),
        mxPathname: max_pathname,
        pNext: ptr::null_mut(),
        zName: NAME.as_ptr(),
        pAppData: platform.cast(),
        xOpen: Some(open),
        xDelete: Some(delete),
        xAccess: Some(access),
        xFullPathname: Some(full_pathname),
        xDlOpen: Some(dl_open),
        xDlError: Some(dl_error),
        xDlSym: Some(dl_sym),
        xDlClose: Some(dl_close),
        xRandomness: Some(randomness),
        xSleep: Some(sleep),
        xCurrentTime: Some(current_time),
        xGetLastError: Some(get_last_error),
        xCurrentTimeInt64: Some(current_time_int64),
        xSetSystemCall: None,
        xGetSystemCall: None,
        xNextSystemCall: None,
    }));
    // SAFETY: `vfs` is leaked, so it lives as long as the process, as SQLite requires of a
    // registered VFS; it is not made the default.
    #[allow(unsafe_code)]
    let code = unsafe { ffi::sqlite3_vfs_register(vfs, 0) };
    if code != ffi::SQLITE_OK {
        return Err(Error { code, message: "SQLite refused to register the batched-WAL VFS".into() });
    }
    Ok(())
}

/// A file of this VFS: SQLite's base (its methods), then ours, then the platform VFS's file.
/// A WAL file points at [`WAL_METHODS`] and keeps the platform's file at [`INNER_OFFSET`]; any
/// other file is the platform's own, opened in place at offset 0 (its methods are the
/// platform's, so none of this module's code runs for it).
#[repr(C)]
struct BatchedFile {
    base: ffi::sqlite3_file,
    /// A `Box<Pending>` once the file has been written to; null before.
    pending: *mut Pending,
}

/// Where the platform's file starts inside a WAL [`BatchedFile`] (8-aligned, as the struct is).
const INNER_OFFSET: usize = std::mem::size_of::<BatchedFile>();

/// Bytes written to the WAL and not yet handed to the operating system: one contiguous run.
struct Pending {
    bytes: Vec<u8>,
    /// The file offset of `bytes[0]`.
    start: i64,
    /// The last write was a commit frame's header: its page comes next, then all goes out.
    commit_page_next: bool,
}

impl Pending {
    fn end(&self) -> i64 {
        self.start.saturating_add(i64::try_from(self.bytes.len()).unwrap_or(i64::MAX))
    }
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    // Version 1: a WAL file is never memory-mapped nor given shared memory.
    iVersion: 1,
    xClose: Some(wal_close),
    xRead: Some(wal_read),
    xWrite: Some(wal_write),
    xTruncate: Some(wal_truncate),
    xSync: Some(wal_sync),
    xFileSize: Some(wal_file_size),
    xLock: Some(wal_lock),
    xUnlock: Some(wal_unlock),
    xCheckReservedLock: Some(wal_check_reserved_lock),
    xFileControl: Some(wal_file_control),
    xSectorSize: Some(wal_sector_size),
    xDeviceCharacteristics: Some(wal_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

// Everything below is called by SQLite with the pointers it was given by this module: `vfs` is
// the registered VFS (its `pAppData` the platform VFS), `file` a `BatchedFile` this VFS opened
// (for `wal_*`, a WAL one). SQLite serializes the calls on one file.

#[allow(unsafe_code)]
unsafe fn platform(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    // SAFETY: see above.
    unsafe { (*vfs).pAppData.cast() }
}

#[allow(unsafe_code)]
unsafe fn inner(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    // SAFETY: a WAL `BatchedFile` was allocated with `szOsFile` bytes: the platform's file
    // follows at `INNER_OFFSET`.
    unsafe { file.cast::<u8>().add(INNER_OFFSET).cast() }
}

/// The platform's methods for the platform file inside `file`.
#[allow(unsafe_code)]
unsafe fn inner_methods(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: a WAL `BatchedFile` is open only while its platform file is (its methods set).
    unsafe { &*(*inner(file)).pMethods }
}

#[allow(unsafe_code)]
unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite gave `file` `szOsFile` bytes (zeroed), enough for the platform's file at
    // offset 0 or at `INNER_OFFSET`; the platform's `xOpen` is called as SQLite would.
    unsafe {
        let platform = platform(vfs);
        let Some(platform_open) = (*platform).xOpen else { return ffi::SQLITE_CANTOPEN };
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return platform_open(platform, name, file, flags, out_flags);
        }
        let batched = file.cast::<BatchedFile>();
        (*batched).base.pMethods = ptr::null();
        (*batched).pending = ptr::null_mut();
        let inner = inner(file);
        let code = platform_open(platform, name, inner, flags, out_flags);
        if code != ffi::SQLITE_OK {
            // A failed open that set its methods must still be closed; SQLite will not close
            // ours (methods null), so close the platform's here.
            if let Some(close) = (*inner).pMethods.as_ref().and_then(|methods| methods.xClose) {
                close(inner);
            }
            return code;
        }
        (*batched).base.pMethods = &WAL_METHODS;
        ffi::SQLITE_OK
    }
}

/// The bytes `file` holds back, once it has been written to.
#[allow(unsafe_code)]
unsafe fn pending<'f>(file: *mut ffi::sqlite3_file) -> Option<&'f mut Pending> {
    // SAFETY: `file` is an open WAL `BatchedFile`; `pending`, when not null, is its own box,
    // used by one call at a time (SQLite serializes calls on a file).
    unsafe { (*file.cast::<BatchedFile>()).pending.as_mut() }
}

/// Hands `pending`'s bytes to the platform's file inside `file`; they are dropped whatever the
/// outcome (an error fails the transaction that wrote them).
#[allow(unsafe_code)]
unsafe fn write_out(file: *mut ffi::sqlite3_file, pending: &mut Pending) -> c_int {
    if pending.bytes.is_empty() {
        return ffi::SQLITE_OK;
    }
    // SAFETY: `file` is ours, its platform file open; `bytes` is valid for its length, which
    // never exceeds BUFFER_BYTES and so fits a c_int.
    unsafe {
        let Some(write) = inner_methods(file).xWrite else { return ffi::SQLITE_IOERR_WRITE };
        let length = c_int::try_from(pending.bytes.len()).unwrap_or(c_int::MAX);
        WRITES_MADE.fetch_add(1, Ordering::Relaxed);
        let code = write(inner(file), pending.bytes.as_ptr().cast(), length, pending.start);
        pending.bytes.clear();
        code
    }
}

/// Writes out whatever `file` holds back.
#[allow(unsafe_code)]
unsafe fn write_out_all(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `file` is ours.
    unsafe { pending(file).map_or(ffi::SQLITE_OK, |pending| write_out(file, pending)) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn wal_write(file: *mut ffi::sqlite3_file, data: *const c_void, amount: c_int, offset: i64) -> c_int {
    // SAFETY: `data` holds `amount` bytes (SQLite's contract for xWrite); `file` is ours.
    unsafe {
        WRITES_TAKEN.fetch_add(1, Ordering::Relaxed);
        let length = usize::try_from(amount).unwrap_or_default();
        if length >= BUFFER_BYTES {
            let code = write_out_all(file);
            if code != ffi::SQLITE_OK {
                return code;
            }
            let Some(write) = inner_methods(file).xWrite else { return ffi::SQLITE_IOERR_WRITE };
            WRITES_MADE.fetch_add(1, Ordering::Relaxed);
            return write(inner(file), data, amount, offset);
        }
        let data = std::slice::from_raw_parts(data.cast::<u8>(), length);
        let batched = file.cast::<BatchedFile>();
        if (*batched).pending.is_null() {
            (*batched).pending = Box::into_raw(Box::new(Pending {
                bytes: Vec::with_capacity(BUFFER_BYTES),
                start: offset,
                commit_page_next: false,
            }));
        }
        let Some(pending) = pending(file) else { return ffi::SQLITE_NOMEM };
        let follows = pending.end() == offset && pending.bytes.len() + length <= BUFFER_BYTES;
        if !follows {
            let code = write_out(file, pending);
            if code != ffi::SQLITE_OK {
                return code;
            }
            pending.start = offset;
        }
        pending.bytes.extend_from_slice(data);
        if pending.commit_page_next {
            pending.commit_page_next = false;
            return write_out(file, pending);
        }
        // A frame header's bytes 4..8 are the database size after a commit, zero otherwise.
        pending.commit_page_next = length == FRAME_HEADER_BYTES && data[4..8] != [0; 4];
        ffi::SQLITE_OK
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn wal_read(file: *mut ffi::sqlite3_file, data: *mut c_void, amount: c_int, offset: i64) -> c_int {
    // SAFETY: `file` is ours; the platform's xRead gets SQLite's own arguments.
    unsafe {
        if let Some(pending) = pending(file) {
            let overlaps = !pending.bytes.is_empty()
                && offset < pending.end()
                && offset.saturating_add(i64::from(amount)) > pending.start;
            if overlaps {
                let code = write_out(file, pending);
                if code != ffi::SQLITE_OK {
                    return code;
                }
            }
        }
        match inner_methods(file).xRead {
            Some(read) => read(inner(file), data, amount, offset),
            None => ffi::SQLITE_IOERR_READ,
        }
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn wal_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `file` is ours and closed once; its box is freed here and the pointer cleared.
    unsafe {
        let written = write_out_all(file);
        let batched = file.cast::<BatchedFile>();
        if !(*batched).pending.is_null() {
            drop(Box::from_raw((*batched).pending));
            (*batched).pending = ptr::null_mut();
        }
        let closed = match inner_methods(file).xClose {
            Some(close) => close(inner(file)),
            None => ffi::SQLITE_OK,
        };
        if written != ffi::SQLITE_OK {
            written
        } else {
            closed
        }
    }
}

/// Writes out what is pending, then runs `call` on the platform's file.
#[allow(unsafe_code)]
unsafe fn after_write_out(file: *mut ffi::sqlite3_file, call: impl FnOnce(*mut ffi::sqlite3_file) -> c_int) -> c_int {
    // SAFETY: `file` is ours.
    unsafe {
        let code = write_out_all(file);
        if code != ffi::SQLITE_OK {
            return code;
        }
        call(inner(file))
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn wal_truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    // SAFETY: `file` is ours; the platform's method gets SQLite's arguments.
    unsafe {
        after_write_out(file, |inner| match inner_methods(file).xTruncate {
            Some(truncate) => truncate(inner, size),
            None => ffi::SQLITE_IOERR_TRUNCATE,
        })
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn wal_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: as above.
    unsafe {
        after_write_out(file, |inner| match inner_methods(file).xSync {
            Some(sync) => sync(inner, flags),
            None => ffi::SQLITE_IOERR_FSYNC,
        })
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn wal_file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    // SAFETY: as above.
    unsafe {
        after_write_out(file, |inner| match inner_methods(file).xFileSize {
            Some(file_size) => file_size(inner, size),
            None => ffi::SQLITE_IOERR_FSTAT,
        })
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn wal_file_control(file: *mut ffi::sqlite3_file, op: c_int, argument: *mut c_void) -> c_int {
    // SAFETY: as above.
    unsafe {
        after_write_out(file, |inner| match inner_methods(file).xFileControl {
            Some(file_control) => file_control(inner, op, argument),
            None => ffi::SQLITE_NOTFOUND,
        })
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn wal_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: as above.
    unsafe { inner_methods(file).xLock.map_or(ffi::SQLITE_OK, |lock| lock(inner(file), level)) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn wal_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: as above.
    unsafe { inner_methods(file).xUnlock.map_or(ffi::SQLITE_OK, |unlock| unlock(inner(file), level)) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn wal_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: as above.
    unsafe {
        match inner_methods(file).xCheckReservedLock {
            Some(check) => check(inner(file), out),
            None => {
                *out = 0;
                ffi::SQLITE_OK
            }
        }
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn wal_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as above.
    unsafe { inner_methods(file).xSectorSize.map_or(4096, |sector_size| sector_size(inner(file))) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn wal_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as above.
    unsafe { inner_methods(file).xDeviceCharacteristics.map_or(0, |characteristics| characteristics(inner(file))) }
}

// The VFS's other methods are the platform VFS's, called with the platform VFS.

#[allow(unsafe_code)]
unsafe extern "C" fn delete(vfs: *mut ffi::sqlite3_vfs, name: *const c_char, sync_dir: c_int) -> c_int {
    // SAFETY: the platform's method with SQLite's arguments.
    unsafe {
        let platform = platform(vfs);
        (*platform).xDelete.map_or(ffi::SQLITE_IOERR_DELETE, |delete| delete(platform, name, sync_dir))
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn access(vfs: *mut ffi::sqlite3_vfs, name: *const c_char, flags: c_int, out: *mut c_int) -> c_int {
    // SAFETY: as above.
    unsafe {
        let platform = platform(vfs);
        (*platform).xAccess.map_or(ffi::SQLITE_IOERR_ACCESS, |access| access(platform, name, flags, out))
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    size: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: as above.
    unsafe {
        let platform = platform(vfs);
        (*platform).xFullPathname.map_or(ffi::SQLITE_CANTOPEN, |full| full(platform, name, size, out))
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn dl_open(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *mut c_void {
    // SAFETY: as above.
    unsafe {
        let platform = platform(vfs);
        (*platform).xDlOpen.map_or(ptr::null_mut(), |dl_open| dl_open(platform, name))
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn dl_error(vfs: *mut ffi::sqlite3_vfs, size: c_int, message: *mut c_char) {
    // SAFETY: as above.
    unsafe {
        let platform = platform(vfs);
        if let Some(dl_error) = (*platform).xDlError {
            dl_error(platform, size, message);
        }
    }
}

type Symbol = unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char);

#[allow(unsafe_code)]
unsafe extern "C" fn dl_sym(vfs: *mut ffi::sqlite3_vfs, handle: *mut c_void, symbol: *const c_char) -> Option<Symbol> {
    // SAFETY: as above.
    unsafe {
        let platform = platform(vfs);
        (*platform).xDlSym.and_then(|dl_sym| dl_sym(platform, handle, symbol))
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn dl_close(vfs: *mut ffi::sqlite3_vfs, handle: *mut c_void) {
    // SAFETY: as above.
    unsafe {
        let platform = platform(vfs);
        if let Some(dl_close) = (*platform).xDlClose {
            dl_close(platform, handle);
        }
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn randomness(vfs: *mut ffi::sqlite3_vfs, size: c_int, out: *mut c_char) -> c_int {
    // SAFETY: as above.
    unsafe {
        let platform = platform(vfs);
        (*platform).xRandomness.map_or(0, |randomness| randomness(platform, size, out))
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sleep(vfs: *mut ffi::sqlite3_vfs, microseconds: c_int) -> c_int {
    // SAFETY: as above.
    unsafe {
        let platform = platform(vfs);
        (*platform).xSleep.map_or(0, |sleep| sleep(platform, microseconds))
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    // SAFETY: as above.
    unsafe {
        let platform = platform(vfs);
        (*platform).xCurrentTime.map_or(ffi::SQLITE_ERROR, |current_time| current_time(platform, out))
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn get_last_error(vfs: *mut ffi::sqlite3_vfs, size: c_int, out: *mut c_char) -> c_int {
    // SAFETY: as above.
    unsafe {
        let platform = platform(vfs);
        (*platform).xGetLastError.map_or(0, |last_error| last_error(platform, size, out))
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn current_time_int64(vfs: *mut ffi::sqlite3_vfs, out: *mut i64) -> c_int {
    // SAFETY: as above.
    unsafe {
        let platform = platform(vfs);
        match (*platform).xCurrentTimeInt64 {
            Some(current_time) => current_time(platform, out),
            None => {
                let mut days = 0.0;
                let code = current_time(vfs, &mut days);
                // Julian day in milliseconds, as SQLite's own fallback computes it.
                *out = (days * 86_400_000.0) as i64;
                code
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::str::FromStr as _;

    use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use sea_orm::sqlx::{Connection as _, Executor as _, Row as _, SqliteConnection};

    use super::*;

    /// A fresh directory for one test's database.
    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("respack-batched-wal-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    async fn open(path: &Path, batched: bool, synchronous: SqliteSynchronous) -> SqliteConnection {
        let mut options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            // A small page cache: a large transaction spills pages to the WAL before its
            // commit and reads them back.
            .pragma("cache_size", "-256")
            .pragma("wal_autocheckpoint", "0");
        if batched {
            options = options.vfs(register_batched_wal_vfs().unwrap());
        }
        SqliteConnection::connect_with(&options).await.unwrap()
    }

    /// One transaction of `rows` rows tagged `n`, each with ~200 bytes of text.
    async fn write_transaction(connection: &mut SqliteConnection, n: i64, rows: i64) {
        try_write_transaction(connection, n, rows).await.unwrap();
    }

    async fn try_write_transaction(
        connection: &mut SqliteConnection,
        n: i64,
        rows: i64,
    ) -> Result<(), sea_orm::sqlx::Error> {
        let mut tx = connection.begin().await?;
        sea_orm::sqlx::query(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?2) \
             INSERT INTO t (n, i, text) SELECT ?1, i, printf('%.200c', char(65 + (?1 + i) % 26)) FROM k",
        )
        .bind(n)
        .bind(rows)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The transactions `reader` sees, each checked whole: (its tag, rows) in tag order.
    async fn transactions(reader: &mut SqliteConnection) -> Vec<(i64, i64)> {
        let check: String = reader.fetch_one("PRAGMA integrity_check").await.unwrap().get(0);
        assert_eq!(check, "ok");
        let rows = reader
            .fetch_all(
                "SELECT n, count(*), sum(text = printf('%.200c', char(65 + (n + i) % 26))) FROM t GROUP BY n ORDER BY n",
            )
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                let (n, count, intact): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
                assert_eq!(count, intact, "transaction {n}: every row as written");
                (n, count)
            })
            .collect()
    }

    const TABLE: &str = "CREATE TABLE IF NOT EXISTS t (n INTEGER, i INTEGER, text TEXT, PRIMARY KEY (n, i))";

    #[tokio::test]
    async fn a_transaction_reaches_the_file_in_few_writes_and_reads_back_whole() {
        let dir = scratch("few-writes");
        let path = dir.join("t.db");
        let mut writer = open(&path, true, SqliteSynchronous::Full).await;
        writer.execute(TABLE).await.unwrap();
        let before = batched_wal_stats();
        // ~1.2 MB of rows through a 256 KiB page cache: pages spill to the WAL mid-transaction
        // and are read back from it.
        write_transaction(&mut writer, 1, 5_000).await;
        write_transaction(&mut writer, 2, 10).await;
        let after = batched_wal_stats();
        let (taken, made) = (after.writes_taken - before.writes_taken, after.writes_made - before.writes_made);
        assert!(taken > 500, "two writes per frame of ~270 pages: {taken}");
        assert!(made * 10 < taken, "frames written in large pieces: {made} writes of {taken}");

        // Another connection, of the platform's VFS, reads the WAL the writer left (it stays
        // open, so nothing was checkpointed).
        let mut reader = open(&path, false, SqliteSynchronous::Full).await;
        assert_eq!(transactions(&mut reader).await, [(1, 5_000), (2, 10)]);
        // So does the writer itself.
        assert_eq!(transactions(&mut writer).await, [(1, 5_000), (2, 10)]);
        // A checkpoint reads the frames back and copies them into the database.
        writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").await.unwrap();
        drop((reader, writer));
        let mut reopened = open(&path, false, SqliteSynchronous::Full).await;
        assert_eq!(transactions(&mut reopened).await, [(1, 5_000), (2, 10)]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn without_a_sync_at_commit_other_connections_still_see_each_commit() {
        // synchronous=NORMAL syncs no commit: the commit frame itself sends everything out.
        let dir = scratch("normal");
        let path = dir.join("t.db");
        let mut writer = open(&path, true, SqliteSynchronous::Normal).await;
        writer.execute(TABLE).await.unwrap();
        let mut reader = open(&path, false, SqliteSynchronous::Normal).await;
        let mut expected = Vec::new();
        for (n, rows) in [(1, 3), (2, 2_000), (3, 1), (4, 700), (5, 4_000)] {
            write_transaction(&mut writer, n, rows).await;
            expected.push((n, rows));
            assert_eq!(transactions(&mut reader).await, expected);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The child of [`a_writer_killed_at_any_moment_leaves_every_commit_and_no_part_of_any_other`]:
    /// writes transactions through the VFS until killed, saying after each which one committed.
    #[tokio::test]
    #[ignore = "run by the crash test as its child process"]
    async fn crash_child_writes_until_killed() {
        let Some(path) = std::env::var_os("RESPACK_BATCHED_WAL_CRASH_DB") else { return };
        let mut writer = open(Path::new(&path), true, SqliteSynchronous::Full).await;
        writer.execute(TABLE).await.unwrap();
        for n in 1.. {
            write_transaction(&mut writer, n, 500 + (n * 997) % 3_000).await;
            println!("committed {n}");
        }
    }

    #[test]
    fn a_writer_killed_at_any_moment_leaves_every_commit_and_no_part_of_any_other() {
        let dir = scratch("crash");
        let path = dir.join("t.db");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for round in 1..=3_usize {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["batched_wal::tests::crash_child_writes_until_killed", "--exact", "--ignored", "--nocapture"])
                .env("RESPACK_BATCHED_WAL_CRASH_DB", &path)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut committed = 0_i64;
            // Each round kills the child a few commits further in, mid-way through whatever it
            // is doing: the rows, the WAL writes, the fsync, the checkpoint.
            for line in BufReader::new(child.stdout.take().unwrap()).lines() {
                if let Some(n) = line.unwrap().strip_prefix("committed ") {
                    committed = n.parse().unwrap();
                    if committed >= (round * 5) as i64 {
                        break;
                    }
                }
            }
            assert!(committed >= (round * 5) as i64, "round {round}: the child stopped after {committed} commits");
            child.kill().unwrap();
            child.wait().unwrap();
            let seen = runtime.block_on(async {
                let mut reader = open(&path, false, SqliteSynchronous::Full).await;
                transactions(&mut reader).await
            });
            let tags: Vec<i64> = seen.iter().map(|(n, _)| *n).collect();
            let rows: Vec<i64> = seen.iter().map(|(n, _)| 500 + (n * 997) % 3_000).collect();
            assert!(tags.len() as i64 >= committed, "round {round}: {committed} said committed, {} found", tags.len());
            assert_eq!(tags, (1..=tags.len() as i64).collect::<Vec<_>>(), "round {round}: no gap, no part");
            assert_eq!(
                seen.iter().map(|(_, count)| *count).collect::<Vec<_>>(),
                rows,
                "round {round}: whole transactions"
            );
            // The next round's child starts over on top of what this one left.
            runtime.block_on(async {
                let mut cleaner = open(&path, false, SqliteSynchronous::Full).await;
                cleaner.execute("DELETE FROM t").await.unwrap();
            });
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The child of [`a_write_that_fails_fails_its_transaction_and_nothing_else`]: writes ever
    /// more through the VFS under a file-size limit, until a write fails.
    #[tokio::test]
    #[ignore = "run by the failed-write test as its child process"]
    async fn fsize_child_writes_until_a_write_fails() {
        let Some(path) = std::env::var_os("RESPACK_BATCHED_WAL_FSIZE_DB") else { return };
        let mut writer = open(Path::new(&path), true, SqliteSynchronous::Full).await;
        for n in 1..=1_000 {
            match try_write_transaction(&mut writer, n, 400).await {
                Ok(()) => println!("committed {n}"),
                Err(error) => {
                    println!("failed {n}: {error}");
                    return;
                }
            }
        }
    }

    #[test]
    fn a_write_that_fails_fails_its_transaction_and_nothing_else() {
        let dir = scratch("fsize");
        let path = dir.join("t.db");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut setup = open(&path, false, SqliteSynchronous::Full).await;
            setup.execute(TABLE).await.unwrap();
        });
        // Files may grow to 2 MiB (`ulimit -f` counts 512-byte blocks in dash, Debian's sh; 4 MiB
        // where it counts KiB): the WAL reaches it after a score of transactions (its checkpoints
        // are off). A write past it fails with EFBIG, the signal that would go with it ignored.
        let exe = std::env::current_exe().unwrap();
        let output = Command::new("sh")
            .args(["-c", "trap '' XFSZ; ulimit -f 4096 && exec \"$0\" \"$@\""])
            .arg(&exe)
            .args(["batched_wal::tests::fsize_child_writes_until_a_write_fails", "--exact", "--ignored", "--nocapture"])
            .env("RESPACK_BATCHED_WAL_FSIZE_DB", &path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let committed = stdout.lines().filter_map(|line| line.strip_prefix("committed ")).count() as i64;
        let failed = stdout.lines().find_map(|line| line.strip_prefix("failed ")).expect(&stdout).to_owned();
        assert!(committed >= 2, "{stdout}");
        assert!(failed.starts_with(&format!("{}: ", committed + 1)), "{failed} after {committed} commits");
        let seen = runtime.block_on(async {
            let mut reader = open(&path, false, SqliteSynchronous::Full).await;
            transactions(&mut reader).await
        });
        // Every commit, whole; the failed one not at all.
        let expected: Vec<(i64, i64)> = (1..=committed).map(|n| (n, 400)).collect();
        assert_eq!(seen, expected, "{stdout}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
