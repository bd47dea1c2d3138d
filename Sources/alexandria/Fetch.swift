import AlexandriaCatalog
import AlexandriaCore
import AlexandriaHome
import AlexandriaManifest
import AlexandriaPeer
import AlexandriaWire
import ArgumentParser
import Crypto
import Foundation
import Logging

struct Fetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fetch a file or a whole release from peers (or the local store), verified, written atomically.",
        discussion: """
            REF is a file's sha256 address (-o FILE), or a manifest id or publisher/name@version (-o DIR). Chunks \
            come from several peers at once; every chunk is hashed before it is written; the file is renamed into \
            place only when its whole SHA-256 matches. An interrupted fetch resumes without downloading verified \
            chunks again. No path in a manifest can write outside DIR.

            A fetched file is written once: the store keeps its chunks by reference to FILE (hashed on every read), \
            so this node serves it to peers from then on. If FILE is later changed, moved or deleted, those chunks \
            read as missing (never as wrong bytes) and `verify` reports them; `--copy` also copies the chunks into \
            the store's packs, at the cost of writing every byte twice.
            """)

    @OptionGroup var options: HomeOptions
    @Argument var ref: String
    @Option(name: .shortAndLong, help: "Where to write (a file for a file address, a folder for a release).")
    var output: String
    @Option(help: "A peer HOST:PORT (repeatable; adds to config's [node] peers).") var peer: [String] = []
    @Option(help: "Seconds without progress before a peer's requests go elsewhere.") var stallTimeout: Double = 5
    @Flag(help: "Also copy the chunks into the store's packs (the file stays servable if FILE goes away).")
    var copy = false
    @Flag(help: "Print a JSON report.") var json = false
    @Flag(help: "Replace FILE if it exists (without it, an existing file is never touched).") var force = false

    func run() async throws {
        Self.reuseChunkBuffers()
        let home = options.resolved
        try ObjectStorage.checkWriter(home)
        let registry = try openRegistry(home)
        try await fetch(home: home, registry: registry)
        // On an s3 home what the fetch wrote to packs (recipes; chunks too with --copy) goes to the bucket, as an
        // add's does. Chunks kept by reference stay in the output file.
        try ObjectStorage.afterWrite(home, registry.store)
    }

    func fetch(home: Home, registry: Registry) async throws {
        let config = try home.config()
        var peers: [PeerAddress] = []
        for text in peer + config.peers {
            guard let p = PeerAddress(parsing: text) else {
                throw CommandFailure(message: "not HOST:PORT: \(text)", exitCode: 2)
            }
            if !peers.contains(p) { peers.append(p) }
        }
        if peer.isEmpty {
            // No --peer: the holders the catalog knows of (availability gossip), then the node's peer table.
            let hash = (try? Reference(parsing: ref)).flatMap { r -> ContentHash? in
                if case .manifest(let h) = r { return h }
                if case .release = r { return try? registry.resolve(r, localKeys: localKeyIDs(home)).manifest.id }
                return nil
            }
            for p in LocalNode.peers(for: hash, home: home, catalog: registry.catalog) where !peers.contains(p) {
                peers.append(p)
            }
        }
        let reference = try parseReference(ref)
        if peers.isEmpty, !(try Self.isLocal(reference, home: home, registry: registry)) {
            peers = try await Self.waitForPeers(ref: ref, home: home, registry: registry)
        }
        let fetcher = Fetcher(
            store: registry.store, identity: NodeIdentity(key: try home.nodeKey()),
            logger: {
                // Per-peer trouble is summarised after the fetch ("dropped peer …"); the log shows only warnings.
                var logger = Logger(label: "alexandria.fetch")
                logger.logLevel = .warning
                return logger
            }())
        fetcher.stallSeconds = stallTimeout
        // A file fetched for the user stays where the user put it: link to it unless --copy.
        fetcher.copyIntoStore = copy
        fetcher.scores = PeerScores(path: home.peerScoresPath)
        var knownAsManifest = false
        if case .manifest(let hash) = reference, try registry.catalog.manifestOrEvidence(id: hash) == nil,
            try registry.store.recipe(of: hash) == nil, !peers.isEmpty
        {
            // Peers may know it as a manifest id; if not, it is a file address.
            knownAsManifest =
                (try? await Self.importManifest(
                    reference, from: peers, fetcher: fetcher, registry: registry, quiet: json)) != nil
        }
        if case .manifest(let hash) = reference, !knownAsManifest,
            try registry.catalog.manifestOrEvidence(id: hash) == nil
        {
            // A file address (or a manifest this node does not know: tried as a file first).
            var st = stat()
            if !force, lstat(output, &st) == 0, !(try Self.holds(hash, at: output)) {
                throw CommandFailure(
                    message:
                        "\(output) already exists; fetch does not replace files: choose another -o, or pass --force "
                        + "to replace it")
            }
            let bar = FetchProgress(label: String(hash.hex.prefix(8)))
            let report = try await fetcher.fetch(hash, to: output, peers: peers) { done, total, bytes in
                bar.update(done: done, total: total, bytes: bytes)
            }
            bar.finish()
            if json { return try Output.json(report) }
            Output.line(
                "wrote \(output): \(report.size) bytes, verified \(report.address); \(report.bytesDownloaded) bytes "
                    + "from \(report.peers.count) peer(s), \(report.bytesFromLocalStore) from the local store, "
                    + String(format: "%.2f s", report.seconds))
            for (p, why) in report.droppedPeers { Output.warning("dropped peer \(p): \(why)") }
            return
        }
        let resolved: Resolved
        do {
            resolved = try registry.resolve(reference, localKeys: localKeyIDs(home))
        } catch let error as ManifestError where error.code == .notFound && !peers.isEmpty {
            try await Self.importManifest(reference, from: peers, fetcher: fetcher, registry: registry, quiet: json)
            resolved = try registry.resolve(reference, localKeys: localKeyIDs(home))
        }
        for note in resolved.notes { say("note: \(note)") }
        let manifest = resolved.manifest.manifest
        if let status = resolved.log.releases[manifest.release.local] {
            if let y = status.yanked {
                Output.warning("\(manifest.release) is YANKED (entry \(y.index)): \(y.reason ?? "")")
            }
            for n in status.notices where n.kind == .deprecate || n.kind == .advisory {
                Output.warning(
                    "\(manifest.release): \(n.kind.rawValue)\(n.severity.map { " (\($0.rawValue))" } ?? ""): "
                        + "\(n.reason ?? "")\(n.successor.map { "; successor \($0)" } ?? "")")
            }
        }
        if let frozen = try registry.catalog.frozenSize(manifest.publisher), manifest.logIndex >= frozen {
            Output.warning(
                "\(manifest.release) is at log entry \(manifest.logIndex), after the publisher's key was reported "
                    + "compromised (log frozen at size \(frozen)): it may be a thief's; `alexandria audit \(ref)` fails"
            )
        }
        if try !registry.catalog.equivocations(publisher: manifest.publisher).isEmpty {
            Output.warning("an overwrite attempt by this publisher was seen; `alexandria audit \(ref)` shows it")
        }
        // All or nothing into the folder, each byte written once (see ReleaseFetch).
        let bar = FetchProgress(label: manifest.release.local)
        let fetchRelease = { (peers: [PeerAddress]) in
            try await ReleaseFetch(fetcher: fetcher).fetch(
                manifest, id: resolved.manifest.id, into: output, peers: peers, force: force
            ) { done, total in
                bar.update(bytes: done, of: total)
            }
        }
        let report: ReleaseFetch.FolderReport
        do {
            report = try await fetchRelease(peers)
        } catch let error as PeerError where error.code == .incomplete && peer.isEmpty {
            // A node that has just joined knows the release before it knows who holds it: wait for its holders.
            bar.finish()
            let more = try await LocalNode.waitForHolders(
                of: resolved.manifest.id, home: home, catalog: registry.catalog, tried: peers,
                why: "no peer asked so far (\(peers.count)) holds all of \(manifest.release.local)")
            if more.isEmpty { throw error }
            report = try await fetchRelease(more + peers)
        }
        bar.finish()
        if json {
            struct Report: Encodable {
                let release: String
                let manifestID: String
                let output: String
                let files: Int
                /// Bytes written into the folder, each once; files already there with the right content are kept.
                let bytes: UInt64
                let filesKept: Int
                let bytesDownloaded: UInt64
                let bytesFromLocalStore: UInt64
                let peers: [String: UInt64]
                let notes: [String]
            }
            return try Output.json(
                Report(
                    release: "\(manifest.release)", manifestID: "\(resolved.manifest.id)", output: output,
                    files: report.files, bytes: report.bytesWritten, filesKept: report.filesKept,
                    bytesDownloaded: report.bytesDownloaded, bytesFromLocalStore: report.bytesFromLocalStore,
                    peers: report.peers, notes: resolved.notes))
        }
        Output.line(
            "fetched \(manifest.release) (\(resolved.manifest.id)) into \(report.directory): \(report.files) files, "
                + "\(report.bytesWritten) bytes written once (\(report.bytesDownloaded) from \(report.peers.count) "
                + "peer(s), \(report.bytesFromLocalStore) from the local store)"
                + (report.filesKept > 0 ? ", \(report.filesKept) already there and kept" : ""))
        for (p, why) in report.droppedPeers { Output.warning("dropped peer \(p): \(why)") }
    }
}

#if canImport(Glibc)
    import Glibc
#endif

extension Fetch {
    /// Whether the regular file at `path` already holds exactly the bytes of `hash` (a fetch killed after its rename
    /// left the complete output there): then fetching again over it replaces nothing of the user's.
    static func holds(_ hash: ContentHash, at path: String) throws -> Bool {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return false }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var stream = SHA256Stream()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return false }
            if n == 0 { break }
            buffer.withUnsafeBytes { stream.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return stream.finalize() == hash
    }

    /// A line about how the fetch went: on stdout, unless stdout carries `--json`.
    func say(_ line: String) {
        if json { Output.errorRaw(line) } else { Output.line(line) }
    }

    /// `main` makes glibc hand every buffer of 256 KiB or more back to the kernel when freed, which bounds a serving
    /// node's memory. A fetch allocates a chunk-sized buffer per message received, so there that costs a page fault
    /// per 4 KiB received (about half the fetch's CPU time, measured on a 2 GiB fetch). One fetch holds few buffers
    /// at a time, so it keeps freed buffers for reuse instead (peak RSS measured: about 50 MB). Environment variables
    /// (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) still win.
    static func reuseChunkBuffers() {
        // glibc's <malloc.h> values: M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3.
        if getenv("MALLOC_MMAP_THRESHOLD_") == nil { _ = c_mallopt(-3, 4 << 20) }
        if getenv("MALLOC_TRIM_THRESHOLD_") == nil { _ = c_mallopt(-1, 64 << 20) }
    }

    /// Whether `reference` can be served from this home alone: a known release whose files are all in the store, or a
    /// stored file.
    static func isLocal(_ reference: Reference, home: Home, registry: Registry) throws -> Bool {
        if case .manifest(let hash) = reference, try registry.store.recipe(of: hash) != nil { return true }
        guard let resolved = try? registry.resolve(reference, localKeys: localKeyIDs(home)) else { return false }
        return try resolved.manifest.manifest.files.allSatisfy { try registry.store.recipe(of: $0.sha256) != nil }
    }

    /// No peer was given, configured or in the table. If a node runs on this home (it may have just joined and not
    /// yet heard who holds what), waits for its connections and holder gossip, saying so; otherwise fails saying that
    /// no peer was asked and how to name one.
    static func waitForPeers(ref: String, home: Home, registry: Registry) async throws -> [PeerAddress] {
        let hash = (try? Reference(parsing: ref)).flatMap { r -> ContentHash? in
            if case .manifest(let h) = r { return h }
            return try? registry.resolve(r, localKeys: localKeyIDs(home)).manifest.id
        }
        let peers = try await LocalNode.waitForPeers(
            for: hash, home: home, catalog: registry.catalog, why: "\(ref) is not here and no peer is known yet")
        if !peers.isEmpty { return peers }
        var hint = ""
        if case .release(let publisher, _, _)? = try? Reference(parsing: ref), publisher.count >= 16,
            publisher.allSatisfy(\.isHexDigit),
            publisher.count < 64
        {
            hint =
                "; a short publisher id (\(publisher)) resolves only through peers or once this node has seen the "
                + "publisher, so give a peer, or the full 64-hex id from `alexandria keys list` on the publisher's side"
        }
        throw CommandFailure(
            message: "\(ref) is not in this home, and no peer was asked: none given (--peer HOST:PORT), none in "
                + "config's [node] peers, and no running node on this home with connections (`alexandria node run "
                + "--peer HOST:PORT`)\(hint)")
    }

    /// Asks peers for a manifest this node does not know, and verifies it into the catalog (returns what was received). Trust is anchored in what
    /// the user typed: a manifest id must be the hash of the payload, a release name's publisher id must be the
    /// fingerprint of the key that signed it; the log entries and checkpoint are checked like any others.
    @discardableResult
    static func importManifest(
        _ reference: Reference, from peers: [PeerAddress], fetcher: Fetcher, registry: Registry, quiet: Bool = false
    )
        async throws -> Fetcher.ManifestBundle
    {
        // The trust checks live in the library (Fetcher.importManifest); this only says what was learned.
        let imported = try await fetcher.importManifest(reference, from: peers, into: registry.catalog)
        let (bundle, publisher) = (imported.bundle, imported.publisher)
        if !quiet {
            Output.line(
                "learned \(publisher.short)… manifest from \(bundle.peer) (signature, log and checkpoint verified)")
        }
        return bundle
    }
}

/// The fetch progress line: the share of chunks done, the byte rate and an ETA, drawn only on a terminal.
final class FetchProgress: @unchecked Sendable {
    private let label: String
    private let lock = NSLock()
    private var bar: ProgressBar?

    init(label: String) { self.label = label }

    func update(done: Int, total: Int, bytes: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        if bar == nil { bar = ProgressBar(label: label, total: UInt64(max(total, 1)), minimumTotal: 0) }
        bar?.update(UInt64(done), bytes: bytes)
    }

    /// For a release: `done` bytes of `total` written into the folder.
    func update(bytes done: UInt64, of total: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        if bar == nil { bar = ProgressBar(label: label, total: max(total, 1), minimumTotal: 0) }
        bar?.update(done)
    }

    func finish() {
        lock.lock()
        defer { lock.unlock() }
        bar?.finish()
    }
}
