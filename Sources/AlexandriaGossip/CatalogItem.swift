import AlexandriaCore
import Crypto

/// One unit of catalog gossip (Protocol/gossip-v1.md, "Items"): a kind byte and the item's own bytes, exactly as
/// they were signed. Items are small metadata; chunks are never items.
///
/// An item's id is `SHA-256(kind || body)`. Two nodes hold the same item exactly when they hold the same id, which
/// is what set reconciliation compares.
public struct CatalogItem: Hashable, Sendable {
    public enum Kind: UInt8, Sendable, CaseIterable, Comparable {
        /// A publisher's first key, SPKI DER (P-256). Its SHA-256 is the publisher id.
        case publisherKey = 1
        /// A publisher log entry: a DSSE envelope (JSON bytes).
        case logEntry = 2
        /// A release manifest: a DSSE envelope (JSON bytes).
        case manifest = 3
        /// A publisher checkpoint: a C2SP signed note (UTF-8 text).
        case checkpoint = 4
        /// An equivocation proof (JSON, see Protocol/manifest-v1.md).
        case equivocation = 5
        /// A witness cosignature of a checkpoint (see `Cosignature`).
        case cosignature = 6
        /// A node's signed statement that it holds (or dropped) every chunk of a release (see `AvailabilityStatement`).
        case availability = 7
        /// A node's signed demand counts per release over its recent window (see `DemandReport`).
        case demand = 8
        /// A publisher's signed compromise notice: a DSSE envelope (JSON bytes, see `CompromiseNotice`).
        case compromise = 9

        public static func < (a: Kind, b: Kind) -> Bool { a.rawValue < b.rawValue }
    }

    public let kind: Kind
    public let body: [UInt8]

    public init(kind: Kind, body: [UInt8]) {
        self.kind = kind
        self.body = body
    }

    /// `SHA-256(kind byte || body)`.
    public var id: ContentHash {
        var h = SHA256()
        h.update(data: [kind.rawValue])
        h.update(data: body)
        return ContentHash(h.finalize())
    }

    /// Largest item body a node accepts (a manifest of 1024 files fits with room).
    public static let maxBodyBytes = 1 << 20
}

/// Named limits of gossip v1. Checked before anything is allocated or stored.
public enum GossipLimits {
    /// Items in one ITEMS message.
    public static let maxItemsPerMessage = 256
    /// Node-id prefixes a pushed ITEMS message may carry (nodes already sent the items).
    public static let maxPathEntries = 32
    /// Ranges in one RECONCILE message.
    public static let maxRanges = 512
    /// Ids in one range's id list, and in one WANT.
    public static let maxIDsPerRange = 64
    public static let maxWant = 1024
    /// Addresses in one PEERS answer.
    public static let maxPeers = 64
    /// Items a node keeps waiting for what they depend on (an entry before the entries before it).
    public static let maxPending = 8192
    /// Releases in one demand report.
    public static let maxDemandEntries = 256
}
