//! Files and directories only their owner can read: every file userbridge writes (the store and
//! its WAL, the audit trail and its rotations, the mirror queue, the SCIM index, rejects,
//! exports) is created 0600 and every directory it creates 0700, whatever the umask — the
//! modes are set after creation, not left to the umask.

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents, each one created 0700 (existing ones are left alone).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the parent directory of `path` when missing (see [`create_dir_all`]).
pub fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => create_dir_all(dir),
        None => Ok(()),
    }
}

/// Opens `path` for appending, creating it; 0600 either way (a regular file of ours that an
/// older version created wider is narrowed).
pub fn append(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)?;
    narrow(&f)?;
    Ok(f)
}

/// Creates (or truncates) `path` for writing, 0600.
pub fn create(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    narrow(&f)?;
    Ok(f)
}

/// The same as [`create`], for async callers.
pub async fn create_async(path: &Path) -> io::Result<tokio::fs::File> {
    let path = path.to_owned();
    let f = tokio::task::spawn_blocking(move || create(&path))
        .await
        .map_err(io::Error::other)??;
    Ok(tokio::fs::File::from_std(f))
}

/// Makes sure the SQLite database `path` and the files SQLite keeps beside it (`-wal`, `-shm`,
/// `-journal`) are 0600: creates the database file empty when missing (an empty file is an
/// empty database, and SQLite gives its WAL and shared-memory files the database file's mode),
/// and narrows the ones that exist.
pub fn sqlite_file(path: &Path) -> io::Result<()> {
    create_parent(path)?;
    drop(append(path)?);
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        if let Ok(f) = File::open(Path::new(&side)) {
            narrow(&f)?;
        }
    }
    Ok(())
}

/// Opens the SQLite database at `path` as userbridge keeps each of its own: created 0600 (with
/// its side files, [`sqlite_file`]), a 5 s busy timeout, WAL (readers do not block the writer;
/// an acknowledged commit survives a process kill). Errors name the file.
pub fn open_sqlite(path: &Path) -> Result<rusqlite::Connection, String> {
    sqlite_file(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let fail = |e: rusqlite::Error| format!("{}: {e}", path.display());
    let conn = rusqlite::Connection::open(path).map_err(fail)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(fail)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(fail)?;
    Ok(conn)
}

/// Sets 0600 on an open regular file (a device such as `/dev/stdout` is left alone).
fn narrow(f: &File) -> io::Result<()> {
    let meta = f.metadata()?;
    if meta.is_file() && meta.permissions().mode() & 0o777 != FILE_MODE {
        f.set_permissions(Permissions::from_mode(FILE_MODE))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_and_directories_are_private_and_wider_ones_narrowed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_dir_all(&dir).unwrap();
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);

        let log = dir.join("audit.jsonl");
        std::fs::write(&log, "old\n").unwrap();
        std::fs::set_permissions(&log, Permissions::from_mode(0o644)).unwrap();
        drop(append(&log).unwrap());
        assert_eq!(mode(&log), 0o600);
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "old\n");

        let out = dir.join("export.jsonl");
        drop(create(&out).unwrap());
        assert_eq!(mode(&out), 0o600);
    }

    #[test]
    fn an_sqlite_store_and_its_wal_are_private() {
        let root = tempfile::tempdir().unwrap();
        let db = root.path().join("data/store.db");
        sqlite_file(&db).unwrap();
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        for f in ["store.db", "store.db-wal", "store.db-shm"] {
            assert_eq!(mode(&root.path().join("data").join(f)), 0o600, "{f}");
        }
        assert_eq!(mode(&root.path().join("data")), 0o700);
    }
}
