import AlexandriaStore
import Crypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What a home remembers about its catalog outside it (`<home>/catalog.mark`), so that a catalog that was deleted,
/// emptied, truncated, replaced by another one or by an older copy of itself is seen as damage instead of being
/// silently started afresh (an empty catalog would accept a conflicting first binding, and a publish would start the
/// node's own publisher log over at index 0: a fork).
///
/// The mark is four lines of text:
///
/// ```
/// alexandria-catalog-mark v1
/// id <8 hex digits>       the catalog's identity: its `PRAGMA application_id`, random, set when it was created
/// items <n>               the catalog's high-water mark: the largest item sequence number it ever assigned
/// check <16 hex digits>   the first 8 bytes of SHA-256 of the three lines above (with their newlines)
/// ```
///
/// The check makes a damaged mark read as damaged (and `verify --repair` write it again from a sound catalog) rather
/// than as a catalog that changed identity or went back in time.
///
/// Item sequence numbers (`items.seq`, AUTOINCREMENT) only grow: every fact the catalog stores (a publisher key, a
/// log entry, a manifest, a checkpoint, a proof) records an item, and SQLite keeps the largest number ever handed out
/// in `sqlite_sequence` even when a row is later replaced. A catalog whose number is below the mark's lost commits.
///
/// The mark is rewritten (atomically: temporary file, rename) when a process opens the catalog and when it
/// closes or checkpoints it, with the values the catalog has committed; it can lag behind the catalog (a process
/// killed with -9 did not rewrite it), never lead it.
public struct CatalogMark: Equatable, Sendable {
    public var id: UInt32
    public var items: Int

    public init(id: UInt32, items: Int) {
        self.id = id
        self.items = items
    }

    static let header = "alexandria-catalog-mark v1"
    /// A mark is a few dozen bytes; anything larger is not one.
    static let maxBytes = 256

    /// The mark's text, byte for byte.
    public var text: String {
        let body = "\(Self.header)\nid \(String(format: "%08x", id))\nitems \(items)\n"
        return body + "check \(Self.check(body))\n"
    }

    static func check(_ body: String) -> String {
        SHA256.hash(data: Array(body.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// Parses a mark; nil if the text is not exactly one (its check included).
    public init?(text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 5, lines[0] == Self.header, lines[4].isEmpty,
            lines[3] == "check " + Self.check(lines[0..<3].joined(separator: "\n") + "\n"),
            lines[1].hasPrefix("id "), lines[1].count == 11, let id = UInt32(lines[1].dropFirst(3), radix: 16),
            lines[2].hasPrefix("items "), let items = Int(lines[2].dropFirst(6)), items >= 0,
            String(items) == lines[2].dropFirst(6)
        else { return nil }
        self.id = id
        self.items = items
    }

    /// The mark at `path`: nil if there is none; throws if the file is there but is not a mark.
    public static func read(_ path: String) throws -> CatalogMark? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CatalogError("cannot read the catalog mark \(path)", code: .damaged)
        }
        guard data.count <= maxBytes, let text = String(data: data, encoding: .utf8),
            let mark = CatalogMark(text: text)
        else {
            throw CatalogError(
                "the catalog mark \(path) is damaged (it is not a catalog mark); after checking the catalog, "
                    + "run `alexandria verify --repair` to write it again from the catalog",
                code: .damaged)
        }
        return mark
    }

    /// Writes the mark atomically (temporary file, rename). Not synced: a mark lost to a power cut lags, which is
    /// safe; one left empty reads as damaged, and `verify --repair` writes it again from a sound catalog.
    public func write(_ path: String) throws {
        // Mode 0644 narrowed by the umask, never wider (a umask of 000 must not make it writable by others).
        let temporary = path + ".tmp-\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CatalogError("cannot write the catalog mark \(temporary): \(String(cString: strerror(errno)))")
        }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw CatalogError("cannot write the catalog mark \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// What the catalog at `catalogPath` holds now, read without changing it; nil if it has no identity yet (a
    /// catalog made before marks existed, or a new one).
    static func observe(_ db: SQLiteConnection) throws -> CatalogMark? {
        let app = try db.statement("PRAGMA application_id")
        _ = try app.step()
        let id = UInt32(truncatingIfNeeded: app.int(0))
        app.reset()
        guard id != 0 else { return nil }
        return CatalogMark(id: id, items: try highWater(db))
    }

    /// The largest item sequence number the catalog ever assigned (0 for a catalog without items).
    static func highWater(_ db: SQLiteConnection) throws -> Int {
        let exists = try db.statement("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'")
        _ = try exists.step()
        let has = exists.int(0) > 0
        exists.reset()
        guard has else { return 0 }
        let seq = try db.statement("SELECT seq FROM sqlite_sequence WHERE name = 'items'")
        defer { seq.reset() }
        return try seq.step() ? seq.int(0) : 0
    }

    /// Why the catalog at `catalogPath` is not the one the mark remembers, or nil if it is (or there is no mark).
    /// Opens the catalog read-only and changes nothing; a file that SQLite cannot read is reported as such.
    public static func problem(catalogPath: String, markPath: String) -> String? {
        let mark: CatalogMark?
        do { mark = try read(markPath) } catch { return "\(error)" }
        guard let mark else { return nil }
        guard FileManager.default.fileExists(atPath: catalogPath) else {
            return "the catalog \(catalogPath) is missing, but this home had one (\(mark.items) item(s)); "
                + fixAdvice(catalogPath)
        }
        do {
            let db = try SQLiteConnection(path: catalogPath, readOnly: true, busyTimeoutMilliseconds: 10_000)
            return problem(db, mark: mark, catalogPath: catalogPath)
        } catch {
            return "the catalog \(catalogPath) cannot be read (\(error)); " + fixAdvice(catalogPath)
        }
    }

    static func problem(_ db: SQLiteConnection, mark: CatalogMark, catalogPath: String) -> String? {
        let now: CatalogMark?
        do { now = try observe(db) } catch {
            return "the catalog \(catalogPath) cannot be read (\(error)); " + fixAdvice(catalogPath)
        }
        guard let now else {
            return "the catalog \(catalogPath) is empty or new, but this home had one with \(mark.items) item(s); "
                + fixAdvice(catalogPath)
        }
        if now.id != mark.id {
            return "the catalog \(catalogPath) is not this home's (identity \(String(format: "%08x", now.id)), "
                + "expected \(String(format: "%08x", mark.id))); " + fixAdvice(catalogPath)
        }
        if now.items < mark.items {
            return "the catalog \(catalogPath) is older than the one this home committed (\(now.items) item(s) "
                + "recorded, \(mark.items) before: a lost -wal or an older copy); " + fixAdvice(catalogPath)
        }
        return nil
    }

    /// The commands that fix a lost or older catalog.
    public static func fixAdvice(_ catalogPath: String) -> String {
        "restore \(catalogPath) (with its -wal) from a backup, or run `alexandria verify --repair` to move it aside "
            + "and start a new catalog, then `alexandria node run` (or `alexandria sync`) to learn it again from peers"
    }
}
