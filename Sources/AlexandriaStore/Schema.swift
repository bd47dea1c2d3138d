/// The SQLite index schema, as numbered migrations. `PRAGMA user_version` holds the number applied last.
///
/// The index is derived data: every row can be rebuilt from the pack files (`ContentStore.rebuildIndex`), which
/// hold chunk records and file-recipe records. It exists to make lookups fast, not to be the source of truth.
enum Schema {
    /// The newest version this build understands. An index with a higher version is refused, never downgraded.
    static let currentVersion = 2

    /// Migration `i` (1-based) brings an index from version `i - 1` to `i`.
    static let migrations: [String] = [
        """
        -- Version 1.

        -- Key/value facts about the store: its format version and the next record sequence number.
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) STRICT;

        -- Pack (segment) files under store/packs/, named by id as %08d.pack. Append-only while open.
        CREATE TABLE packs (
            id             INTEGER PRIMARY KEY,
            -- Bytes of the pack that committed rows point into. A writer that finds the file longer cuts it back
            -- to this size before appending: whatever lies past it is an unfinished write from a crash.
            committed_size INTEGER NOT NULL,
            -- Bytes of records (header and payload) still referenced; GC compacts packs whose live share is low.
            live_bytes     INTEGER NOT NULL DEFAULT 0,
            -- 1 once the pack reached its target size; no more appends.
            sealed         INTEGER NOT NULL DEFAULT 0,
            -- 1 when every raw chunk in it was already offered to the compressor (so it is not tried again).
            compressed     INTEGER NOT NULL DEFAULT 0
        ) STRICT;

        -- One row per distinct chunk: where its record is and how it is stored.
        CREATE TABLE chunks (
            id            BLOB PRIMARY KEY,     -- 32 bytes: SHA-256 of the chunk's original bytes
            pack          INTEGER NOT NULL,     -- packs.id
            offset        INTEGER NOT NULL,     -- offset of the record header in the pack
            raw_length    INTEGER NOT NULL,     -- original length
            stored_length INTEGER NOT NULL,     -- payload length as stored (after the codec)
            codec         INTEGER NOT NULL,     -- 0 raw, 1 zstd, 2 byte-grouped zstd (ChunkCodec)
            refs          INTEGER NOT NULL,     -- how many file positions use this chunk
            bad           INTEGER NOT NULL DEFAULT 0  -- 1 once a read failed verification: treated as missing
        ) STRICT, WITHOUT ROWID;

        -- One row per stored file, named by the SHA-256 of its whole content.
        CREATE TABLE files (
            address     BLOB PRIMARY KEY,       -- 32 bytes: SHA-256 of the whole file
            size        INTEGER NOT NULL,
            merkle_root BLOB NOT NULL,          -- RFC 6962 root over the chunk leaves (ChunkRef)
            chunker     TEXT NOT NULL,          -- e.g. fastcdc-gear-v1/65536/262144/1048576
            chunk_count INTEGER NOT NULL,
            -- The chunk list: chunk_count entries of id (32 bytes) and length (u32 big-endian); offsets are the
            -- running sum of lengths.
            chunk_list  BLOB NOT NULL,
            sequence    INTEGER NOT NULL,       -- sequence number of the recipe record in the packs
            recipe_pack   INTEGER NOT NULL,     -- where the recipe record is, so compaction can move it
            recipe_offset INTEGER NOT NULL,
            added_at    INTEGER NOT NULL        -- unix seconds
        ) STRICT, WITHOUT ROWID;

        CREATE INDEX chunks_by_pack ON chunks(pack);
        CREATE INDEX files_by_recipe_pack ON files(recipe_pack);
        -- Removal records (tombstones) in the packs, so a rebuild does not bring a removed file back.
        CREATE TABLE removals (
            address     BLOB PRIMARY KEY,
            sequence    INTEGER NOT NULL,
            pack        INTEGER NOT NULL,
            offset      INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;
        """,
        """
        -- Version 2: chunks held by reference to a verified file outside the packs (a fetch's output).

        -- Files outside the store whose bytes back linked chunks. The store never writes, moves or deletes them;
        -- a linked chunk is hashed on every read like any other, so a changed or deleted file reads as missing.
        CREATE TABLE linked_files (
            id   INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE           -- absolute path
        ) STRICT;

        -- NULL: the chunk is a record in pack `pack`. Otherwise linked_files.id: the chunk is `raw_length` plain
        -- bytes at `offset` of that file, `pack` is -1, `codec` 0 and `stored_length` = `raw_length`.
        ALTER TABLE chunks ADD COLUMN linked INTEGER;
        CREATE INDEX chunks_by_linked ON chunks(linked) WHERE linked IS NOT NULL;
        """,
    ]
}
