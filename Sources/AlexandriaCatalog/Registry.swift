import AlexandriaCore
import AlexandriaManifest
import AlexandriaStore
import Crypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What a reference on the command line names: a manifest id, a release (`publisher/name@version` or
/// `publisher/name@latest`), or a file address.
public enum Reference: Sendable, Equatable {
    case manifest(ContentHash)
    case release(publisher: String, name: String, version: String)
    case file(ContentHash)

    /// `sha256:HEX` is tried as a manifest id first, then as a file address (see `Registry.resolve`).
    public init(parsing text: String) throws {
        if let hash = ContentHash(userInput: text) {
            self = .manifest(hash)
            return
        }
        guard let slash = text.firstIndex(of: "/"), let at = text.lastIndex(of: "@"), slash < at else {
            throw CatalogError("'\(text)' is not a sha256: hash or a publisher/name@version release")
        }
        let publisher = String(text[..<slash])
        let name = String(text[text.index(after: slash)..<at])
        let version = String(text[text.index(after: at)...])
        if version != "latest" { try ReleaseName.validate(name: name, version: version) }
        self = .release(publisher: publisher, name: name, version: version)
    }
}

/// A release resolved to its manifest, with how it was resolved.
public struct Resolved: Sendable {
    public let manifest: SignedManifest
    public let log: PublisherLog
    /// Lines that explain the resolution (why `latest` moved, which manifest a file belongs to).
    public let notes: [String]
}

/// Publishing, announcing and resolving: the operations that tie the store (bytes) to the catalog (signed facts).
public struct Registry: Sendable {
    public let store: ContentStore
    public let catalog: Catalog

    public init(store: ContentStore, catalog: Catalog) {
        self.store = store
        self.catalog = catalog
    }

    // MARK: - Publish

    public struct PublishResult: Sendable, Encodable {
        public let manifestID: String
        public let release: String
        public let logIndex: Int
        public let files: Int
        public let bytes: UInt64
        /// True when the same folder was already published as this release: nothing was written.
        public let alreadyPublished: Bool
    }

    /// Top-level paths that are never part of a release (repository metadata; OpenSSF Model Signing ignores them too).
    public static let ignoredTopLevel: Set<String> = [".git", ".gitattributes", ".github", ".gitignore"]

    /// Ingests `directory` and publishes it as `name@version` in `key`'s log.
    ///
    /// Publishing the same bytes again as the same release is a no-op; different bytes under an existing release are
    /// refused (use a new version). Symlinks are followed only inside a Hugging Face cache entry
    /// (`models--ORG--NAME/snapshots/REV/…` pointing into that entry's `blobs/`); any other symlink is refused.
    public func publish(
        directory: String, name: String, version: String, key: PublisherKey, publisher: PublisherID? = nil,
        lineage: [Manifest.Lineage] = [],
        license: String? = nil, modelCard: String? = nil, attestation: JSONValue? = nil,
        progress: ((String, UInt64) -> Void)? = nil
    ) throws -> PublishResult {
        try ReleaseName.validate(name: name, version: version)
        let files = try Self.releaseFiles(in: directory)
        try PathRules.validate(all: files.map(\.relative))
        guard files.count <= Manifest.maxFiles else {
            throw ManifestError(.limitExceeded, "a release holds at most \(Manifest.maxFiles) files")
        }
        var entries: [Manifest.File] = []
        var total: UInt64 = 0
        for file in files {
            let added = try store.add(path: file.absolute) { progress?(file.relative, $0) }
            entries.append(
                Manifest.File(
                    path: file.relative, size: added.size, sha256: added.address, merkleRoot: added.merkleRoot,
                    chunks: added.chunkCount, chunker: store.options.chunker))
            total += added.size
        }
        if let modelCard, !entries.contains(where: { $0.path == modelCard }) {
            throw CatalogError("the model card \(modelCard) is not a file of the release")
        }
        let publisher = publisher ?? key.id
        if publisher == key.id { try catalog.register(publisherKey: key.publicKey) }
        // Another process (a second `publish`, or the daemon learning this log) may append to the log between the
        // read below and the commit: the commit then fails and nothing of this attempt is stored. Read the log again
        // and sign at its new end; if that process bound this very release meanwhile, the check below answers
        // (the same content: already published; other content: refused, a release never changes).
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try publishAttempt(
                    publisher: publisher, name: name, version: version, key: key, entries: entries, total: total,
                    lineage: lineage, license: license, modelCard: modelCard, attestation: attestation)
            } catch let error as CatalogError where error.code == .logMoved && attempt < Self.maxPublishAttempts {
                continue
            }
        }
    }

    /// How many times `publish` signs again after losing a race for the log's next index.
    public static let maxPublishAttempts = 16

    /// One try of `publish` once the files are in the store: reads the log, signs at its end, commits.
    func publishAttempt(
        publisher: PublisherID, name: String, version: String, key: PublisherKey, entries: [Manifest.File],
        total: UInt64, lineage: [Manifest.Lineage], license: String?, modelCard: String?, attestation: JSONValue?
    ) throws -> PublishResult {
        guard var log = try catalog.log(publisher) else { throw CatalogError("cannot load the publisher log") }
        guard log.currentKey.derRepresentation == key.publicKey.derRepresentation else {
            throw CatalogError(
                "this key does not sign for publisher \(publisher.short) any more: its log handed over to key "
                    + "\(PublisherID(publicKey: log.currentKey).short) (see `alexandria keys rotate`)")
        }
        let local = "\(name)@\(version)"
        if let bound = try catalog.binding(publisher: publisher, release: local) {
            guard let existing = try catalog.manifest(id: bound) else {
                throw CatalogError("\(local) is bound to \(bound), which this node does not hold")
            }
            // Say what would change: a license or lineage change is not "different content".
            var changes: [String] = []
            if existing.manifest.files.map({ [$0.path, $0.sha256.hex] })
                != entries.sorted(by: { $0.path < $1.path }).map({ [$0.path, $0.sha256.hex] })
            {
                changes.append("different content (files)")
            }
            if existing.manifest.license != license {
                changes.append(
                    "a license change, from \(existing.manifest.license.map { "\"\($0)\"" } ?? "none") to "
                        + "\(license.map { "\"\($0)\"" } ?? "none")")
            }
            if existing.manifest.lineage != lineage { changes.append("a lineage change (--derived-from)") }
            if existing.manifest.modelCard != modelCard { changes.append("a model card change") }
            guard changes.isEmpty else {
                throw CatalogError(
                    "\(publisher.short)/\(local) is already published (\(bound)); this would be "
                        + changes.joined(separator: ", ") + ". A release never changes: publish under a new version")
            }
            return PublishResult(
                manifestID: bound.description, release: "\(publisher)/\(local)", logIndex: existing.manifest.logIndex,
                files: entries.count, bytes: total, alreadyPublished: true)
        }
        let manifest = try Manifest(
            publisher: publisher, name: name, version: version, logIndex: log.size, files: entries, lineage: lineage,
            license: license, modelCard: modelCard, created: ISOTime.now())
        let signed = try SignedManifest(manifest: manifest, key: key)
        let entry = try SignedLogEntry.sign(
            try LogEntry(publisher: publisher, index: log.size, kind: .publish, release: local, manifest: signed.id),
            key: key)
        try log.append(entry.envelope)
        var envelopes = [entry.envelope]
        if let attestation {
            let attest = try SignedLogEntry.sign(
                try LogEntry(
                    publisher: publisher, index: log.size, kind: .attest, release: local, manifest: signed.id,
                    attestation: attestation), key: key)
            try log.append(attest.envelope)
            envelopes.append(attest.envelope)
        }
        let checkpoint = try log.checkpoint(signedWith: key)
        do {
            try catalog.commit(entry: envelopes[0], manifest: signed.envelope, checkpoint: checkpoint)
        } catch let error as CatalogError {
            if let now = try catalog.log(publisher), now.size > manifest.logIndex {
                throw CatalogError("the log moved on: \(error)", code: .logMoved)
            }
            throw error
        }
        for extra in envelopes.dropFirst() {
            try catalog.commit(entry: extra, manifest: nil, checkpoint: checkpoint)
        }
        return PublishResult(
            manifestID: signed.id.description, release: "\(publisher)/\(local)", logIndex: manifest.logIndex,
            files: entries.count, bytes: total, alreadyPublished: false)
    }

    /// Appends a notice (yank, unyank, deprecate, advisory, attest) about one of `key`'s releases.
    public func announce(
        _ kind: LogEntry.Kind, release resolved: Resolved, key: PublisherKey, reason: String? = nil,
        sunset: String? = nil, successor: String? = nil, severity: LogEntry.Severity? = nil
    ) throws -> LogEntry {
        var log = resolved.log
        guard log.currentKey.derRepresentation == key.publicKey.derRepresentation else {
            throw CatalogError(
                "only the publisher's current key can announce changes to \(resolved.manifest.manifest.release)")
        }
        let publisher = resolved.manifest.manifest.publisher
        let entry = try SignedLogEntry.sign(
            try LogEntry(
                publisher: publisher, index: log.size, kind: kind, release: resolved.manifest.manifest.release.local,
                manifest: resolved.manifest.id, reason: reason, sunset: sunset, successor: successor,
                severity: severity), key: key)
        try log.append(entry.envelope)
        try catalog.commit(entry: entry.envelope, manifest: nil, checkpoint: try log.checkpoint(signedWith: key))
        return entry.entry
    }

    /// Hands `publisher`'s log from `old` (its current key) to `new`: a rotate-key entry signed by both, and a
    /// checkpoint signed by the new key. From then on only `new` signs for the publisher.
    public func rotate(publisher: PublisherID, from old: PublisherKey, to new: PublisherKey) throws -> LogEntry {
        guard var log = try catalog.log(publisher) else {
            throw CatalogError("publisher \(publisher.short) is not known here")
        }
        guard log.currentKey.derRepresentation == old.publicKey.derRepresentation else {
            throw CatalogError("\(old.id.short) is not the current key of publisher \(publisher.short)")
        }
        guard old.id != new.id,
            !log.keys.contains(where: { $0.key.derRepresentation == new.publicKey.derRepresentation })
        else {
            throw CatalogError("the new key has signed for this publisher before; use a fresh key")
        }
        let entry = try SignedLogEntry.sign(
            try LogEntry(
                publisher: publisher, index: log.size, kind: .rotateKey, newKey: Array(new.publicKey.derRepresentation)),
            key: old, newKey: new)
        try log.append(entry.envelope)
        try catalog.commit(entry: entry.envelope, manifest: nil, checkpoint: try log.checkpoint(signedWith: new))
        return entry.entry
    }

    /// Signs and stores a compromise notice freezing `publisher`'s log at `size` entries (default: its size here),
    /// with `key`, which must be a key that has signed for the log. From then on this node refuses every entry and
    /// manifest at index `size` or later; a node gossiping from this home passes the notice on.
    public func reportCompromise(
        publisher: PublisherID, key: PublisherKey, size: Int?, reason: String?
    ) throws -> CompromiseNotice {
        guard let log = try catalog.log(publisher) else {
            throw CatalogError("publisher \(publisher.short) is not known here")
        }
        guard log.keys.contains(where: { $0.key.derRepresentation == key.publicKey.derRepresentation }) else {
            throw CatalogError("\(key.id.short) has never signed for publisher \(publisher.short)")
        }
        let size = size ?? log.size
        guard size >= 0, size <= log.size else {
            throw CatalogError("the log here has \(log.size) entries; a notice freezes it at a size it has reached")
        }
        let notice = try CompromiseNotice(
            publisher: publisher, size: size, root: MerkleTree.root(log.leaves.prefix(size)), reason: reason)
        let signed = try SignedCompromiseNotice.sign(notice, key: key, log: log)
        guard try catalog.addCompromiseNotice(signed.envelope) else {
            throw CatalogError(
                "publisher \(publisher.short)'s log is already frozen at size "
                    + "\(try catalog.frozenSize(publisher) ?? size); a notice can only freeze it earlier")
        }
        return notice
    }

    // MARK: - Resolve

    /// Resolves a reference to a manifest this node holds. `localKeys` maps key names to publisher ids, so a user
    /// can write `mykey/model@1.0`.
    public func resolve(_ reference: Reference, localKeys: [String: PublisherID] = [:]) throws -> Resolved {
        switch reference {
        case .manifest(let id):
            if let signed = try catalog.manifest(id: id) {
                return Resolved(manifest: signed, log: try catalog.log(signed.manifest.publisher)!, notes: [])
            }
            // The user named this exact manifest: one held only as evidence of a conflict (verified against the
            // publisher's key) is what they asked for, whichever binding stands here.
            if let signed = try catalog.manifestOrEvidence(id: id), let log = try catalog.log(signed.manifest.publisher)
            {
                return Resolved(
                    manifest: signed, log: log,
                    notes: ["\(id) is one side of a conflict over \(signed.manifest.release); fetched by its id"])
            }
            let holders = try catalog.manifests(containing: id)
            guard let first = holders.first, let signed = try catalog.manifest(id: first) else {
                throw ManifestError(.notFound, "no manifest or published file \(id) is known here")
            }
            return Resolved(
                manifest: signed, log: try catalog.log(signed.manifest.publisher)!,
                notes: ["\(id) is a file of \(signed.manifest.release) (manifest \(first))"])
        case .file(let address):
            return try resolve(.manifest(address), localKeys: localKeys)
        case .release(let publisherText, let name, let version):
            let publisher = try publisherID(publisherText, localKeys: localKeys)
            guard let log = try catalog.log(publisher) else {
                throw ManifestError(.notFound, "publisher \(publisherText) is not known here")
            }
            var notes: [String] = []
            var release = "\(name)@\(version)"
            if version == "latest" {
                guard let (status, skipped) = log.latest(name: name) else {
                    throw ManifestError(.notFound, "\(publisher.short)/\(name) has no release that is not yanked")
                }
                release = status.release
                for s in skipped {
                    notes.append(
                        "latest is \(status.release), not \(s.release): \(s.release) was yanked (entry "
                            + "\(s.yanked?.index ?? -1)): \(s.yanked?.reason ?? "")")
                }
            }
            guard try catalog.binding(publisher: publisher, release: release) != nil else {
                throw ManifestError(.notFound, "\(publisher.short)/\(release) is not known here")
            }
            let (contenders, decision) = try catalog.settlement(publisher: publisher, release: release)
            // The publisher's log entry binds the name before its manifest arrives (gossip sends log entries first, and
            // a fresh node may hold the one without the other): that is a manifest not here yet, not a contest.
            guard !contenders.isEmpty else {
                throw ManifestError(
                    .notFound,
                    "\(publisher.short)/\(release) is published, but its manifest has not reached this node yet")
            }
            guard let bound = decision.winner, let signed = try catalog.manifestOrEvidence(id: bound) else {
                throw CatalogError(
                    Self.contestedMessage(
                        "\(publisher.short)/\(release)", contenders: contenders, policy: catalog.trust),
                    code: .contested)
            }
            if let first = try catalog.binding(publisher: publisher, release: release), first != bound {
                notes.append(
                    "\(release) resolves to \(bound): a quorum of the witnesses this node trusts cosigned it; this node "
                        + "saw the conflicting \(first) first (an overwrite attempt; see audit)")
            }
            if decision.reason == .heldDespiteConflictingQuorums {
                notes.append(
                    "trusted witnesses cosigned both sides of this conflict ("
                        + decision.doubleSigners.map(Ed25519Strict.describe).joined(separator: ", ")
                        + "); this node keeps the binding it saw first")
            }
            guard signed.manifest.release.local == release else {
                throw ManifestError(
                    .logInconsistent,
                    "\(release) is bound to a manifest for \(signed.manifest.release.local); refusing it")
            }
            notes += Self.successorNotes(release, log: log)
            return Resolved(manifest: signed, log: log, notes: notes)
        }
    }

    /// For a deprecated release whose named successor is yanked or not in the log: says so, since following the
    /// deprecation would lead nowhere.
    static func successorNotes(_ release: String, log: PublisherLog) -> [String] {
        guard let status = log.releases[release] else { return [] }
        var notes: [String] = []
        for notice in status.notices where notice.kind == .deprecate {
            guard let successor = notice.successor else { continue }
            let local = String(successor.split(separator: "/").last ?? Substring(successor))
            if let next = log.releases[local] {
                if let yanked = next.yanked {
                    notes.append(
                        "\(release) is deprecated (entry \(notice.index)) in favour of \(local), but \(local) was yanked "
                            + "(entry \(yanked.index)): \(yanked.reason ?? "no reason given"); the publisher names no "
                            + "usable successor")
                }
            } else {
                notes.append(
                    "\(release) is deprecated (entry \(notice.index)) in favour of \(successor), which this publisher's log "
                        + "does not hold")
            }
        }
        return notes
    }

    /// Why a contested release is refused, with each contender and its witnesses (trusted or not).
    static func contestedMessage(
        _ name: String, contenders: [ForkChoice.Contender], policy: TrustPolicy
    ) -> String {
        var lines = [
            "\(name) is contested: its publisher signed \(contenders.count) different manifests for it, and nothing "
                + "settles which stands here (this node learned them together, and "
                + (policy.isSet
                    ? "no contender has a quorum of \(policy.quorum) of the witnesses in [trust])"
                    : "config.toml lists no trusted witnesses in [trust])")
        ]
        for c in contenders {
            let w = c.witnesses.map { Ed25519Strict.describe($0) + (policy.trusts($0) ? " (trusted)" : " (untrusted)") }
            lines.append("  contender \(c.id): witnesses \(w.isEmpty ? "none" : w.joined(separator: ", "))")
        }
        lines.append(
            "Fetch by manifest id if you know which one you want, or list the witnesses you trust in [trust] "
                + "(see Protocol/gossip-v1.md, \"Which binding stands\")")
        return lines.joined(separator: "\n")
    }

    func publisherID(_ text: String, localKeys: [String: PublisherID]) throws -> PublisherID {
        if let id = localKeys[text] { return id }
        if let id = PublisherID(hex: text.lowercased()) { return id }
        let matches = try catalog.publishers(matching: text)
        guard !matches.isEmpty else {
            // Not found (not a catalog failure): a caller with peers asks them, as it does for an unknown release.
            throw ManifestError(
                .notFound,
                "no publisher known here has an id starting \(text), and no local key is named so (`fetch` asks "
                    + "peers for it; elsewhere, give the full 64-hex id)")
        }
        guard matches.count == 1 else {
            throw CatalogError("\(text) matches \(matches.count) publishers; give more of the id")
        }
        return matches[0]
    }

    // MARK: - Folders

    public struct ReleaseFile: Sendable {
        public let relative: String
        public let absolute: String
    }

    /// The regular files under `directory`, relative paths sorted, symlinks checked as `publish` describes.
    public static func releaseFiles(in directory: String) throws -> [ReleaseFile] {
        var st = stat()
        guard stat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw CatalogError("\(directory) is not a folder")
        }
        let root = URL(fileURLWithPath: directory).standardizedFileURL.resolvingSymlinksInPath().path
        let cacheEntry = huggingFaceCacheEntry(root)
        var out: [ReleaseFile] = []
        func walk(_ relative: String) throws {
            let absolute = relative.isEmpty ? root : root + "/" + relative
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: absolute) else {
                throw CatalogError("cannot read the folder \(absolute)")
            }
            for name in names.sorted() {
                let rel = relative.isEmpty ? name : relative + "/" + name
                if relative.isEmpty && ignoredTopLevel.contains(name) { continue }
                let path = absolute + "/" + name
                var l = stat()
                guard lstat(path, &l) == 0 else { throw CatalogError("cannot read \(path)") }
                switch l.st_mode & S_IFMT {
                case S_IFDIR:
                    try walk(rel)
                case S_IFREG:
                    out.append(ReleaseFile(relative: rel, absolute: path))
                case S_IFLNK:
                    let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
                    guard let cacheEntry, target.hasPrefix(cacheEntry + "/") else {
                        throw CatalogError(
                            "\(rel) is a symbolic link to \(target); links are followed only inside a Hugging Face "
                                + "cache entry. Copy the file in, or publish the real folder")
                    }
                    var t = stat()
                    guard stat(target, &t) == 0, (t.st_mode & S_IFMT) == S_IFREG else {
                        throw CatalogError("\(rel) links to \(target), which is not a regular file")
                    }
                    out.append(ReleaseFile(relative: rel, absolute: target))
                default:
                    throw CatalogError("\(rel) is not a regular file or folder")
                }
            }
        }
        try walk("")
        return out
    }

    /// `…/models--ORG--NAME` when `path` is inside a snapshot of that Hugging Face cache entry.
    static func huggingFaceCacheEntry(_ path: String) -> String? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard let i = parts.lastIndex(where: { $0.hasPrefix("models--") || $0.hasPrefix("datasets--") }),
            i + 2 < parts.count, parts[i + 1] == "snapshots"
        else { return nil }
        return parts[...i].joined(separator: "/")
    }
}
