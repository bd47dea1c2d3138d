import AlexandriaCore
import Crypto

/// What the log says about one release.
public struct ReleaseStatus: Sendable, Equatable {
    public struct Notice: Sendable, Equatable {
        public let index: Int
        public let kind: LogEntry.Kind
        public let time: String
        public let reason: String?
        public let sunset: String?
        public let successor: String?
        public let severity: LogEntry.Severity?
    }

    public let release: String
    public let manifest: ContentHash
    public let publishIndex: Int
    public internal(set) var yanked: Notice?
    /// Every yank, unyank, deprecation, advisory and attestation, in log order.
    public internal(set) var notices: [Notice] = []
}

/// A publisher's log, replayed and checked: a value with no I/O.
///
/// Appends must come in index order with no gap, each signed by the key in force at that point (the first key is
/// the one the publisher id names; a rotate-key entry hands over to its new key). The first publish of a release
/// binds it forever; a later publish of the same `name@version` is refused here and becomes an equivocation proof.
public struct PublisherLog: Sendable {
    public let publisher: PublisherID
    public let originalKey: P256.Signing.PublicKey
    public private(set) var currentKey: P256.Signing.PublicKey
    /// Every key that has signed for this log, with the index from which it signs.
    public private(set) var keys: [(from: Int, key: P256.Signing.PublicKey)]
    public private(set) var entries: [SignedLogEntry] = []
    public private(set) var leaves: [ContentHash] = []
    public private(set) var releases: [String: ReleaseStatus] = [:]
    /// Release names in publish order.
    public private(set) var publishOrder: [String] = []

    public init(publisherKey: P256.Signing.PublicKey) {
        publisher = PublisherID(publicKey: publisherKey)
        originalKey = publisherKey
        currentKey = publisherKey
        keys = [(0, publisherKey)]
    }

    public var size: Int { entries.count }
    public var root: ContentHash { MerkleTree.root(leaves) }

    /// Checks and appends one entry. Throws `logInconsistent` for an index that is not the next one, `badSignature`
    /// for a signature by any other key, `equivocation` for a second binding of a bound release.
    @discardableResult
    public mutating func append(_ envelope: DSSEEnvelope) throws(ManifestError) -> SignedLogEntry {
        let signed = try SignedLogEntry(envelope: envelope, signer: currentKey)
        let entry = signed.entry
        guard entry.publisher == publisher else {
            throw ManifestError(.logInconsistent, "the entry belongs to publisher \(entry.publisher.short)")
        }
        guard entry.index == entries.count else {
            throw ManifestError(
                .logInconsistent,
                entry.index > entries.count
                    ? "the log skips from entry \(entries.count - 1) to \(entry.index)"
                    : "entry \(entry.index) is already in the log")
        }
        switch entry.kind {
        case .publish:
            let name = entry.release!
            if let bound = releases[name] {
                throw ManifestError(
                    .equivocation,
                    "\(name) is already bound to \(bound.manifest) (entry \(bound.publishIndex)); a release cannot change"
                )
            }
            releases[name] = ReleaseStatus(release: name, manifest: entry.manifest!, publishIndex: entry.index)
            publishOrder.append(name)
        case .yank, .unyank, .deprecate, .advisory, .attest:
            let name = entry.release!
            guard var status = releases[name] else {
                throw ManifestError(
                    .logInconsistent, "entry \(entry.index) is about \(name), which the log never published")
            }
            guard status.manifest == entry.manifest else {
                throw ManifestError(.logInconsistent, "entry \(entry.index) names another manifest for \(name)")
            }
            let notice = ReleaseStatus.Notice(
                index: entry.index, kind: entry.kind, time: entry.time, reason: entry.reason, sunset: entry.sunset,
                successor: entry.successor, severity: entry.severity)
            if entry.kind == .yank { status.yanked = notice }
            if entry.kind == .unyank { status.yanked = nil }
            status.notices.append(notice)
            releases[name] = status
        case .rotateKey:
            let key = try! P256.Signing.PublicKey(derRepresentation: entry.newKey!)
            currentKey = key
            keys.append((entry.index + 1, key))
        }
        entries.append(signed)
        leaves.append(entry.leafHash)
        return signed
    }

    /// The newest release of `name` that is not yanked, and why `latest` is not the newest one if it is not.
    public func latest(name: String) -> (release: ReleaseStatus, skipped: [ReleaseStatus])? {
        var skipped: [ReleaseStatus] = []
        for release in publishOrder.reversed() where release.hasPrefix(name + "@") {
            let status = releases[release]!
            if status.yanked == nil { return (status, skipped) }
            skipped.append(status)
        }
        return nil
    }

    /// The key that signs at `index` (for checkpoints: the key in force at that tree size).
    public func key(at index: Int) -> P256.Signing.PublicKey {
        keys.last { $0.from <= index }!.key
    }

    /// A checkpoint of the whole log, signed.
    public func checkpoint(signedWith key: PublisherKey) throws -> SignedNote {
        try Checkpoint(publisher: publisher, size: size, root: root).sign(with: key)
    }

    /// Verifies a signed checkpoint against this log: signed by a key of this publisher, and, when the log has
    /// reached that size, with the root the log has there. A checkpoint beyond the log's size is returned as
    /// verified-signature-only; the caller must catch up before trusting it.
    public func verify(_ note: SignedNote) throws(ManifestError) -> (Checkpoint, matches: Bool?) {
        var last: ManifestError?
        for (_, key) in keys.reversed() {
            do throws(ManifestError) {
                let checkpoint = try note.verifiedCheckpoint(publisherKey: key, publisher: publisher)
                guard checkpoint.size <= size else { return (checkpoint, nil) }
                return (checkpoint, MerkleTree.root(leaves.prefix(checkpoint.size)) == checkpoint.root)
            } catch {
                last = error
            }
        }
        throw last ?? ManifestError(.unknownKey, "no key of this publisher signed the checkpoint")
    }
}
