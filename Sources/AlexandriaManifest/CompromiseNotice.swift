import AlexandriaCore
import Crypto

/// A publisher's signed statement that its key leaked: its log is frozen at `size` entries, whose Merkle root is
/// `root`. Nodes that hold the notice refuse every log entry at index `size` or later and every manifest whose log
/// index is `size` or later, and `audit` fails (exit 9) on such a release they held before. A notice only ever
/// removes power, so anyone holding a key of the log may issue one; where there are several, the smallest size wins.
///
/// Wire form: a DSSE envelope, payload type `application/vnd.alexandria.compromise+json`, payload canonical JSON
/// `{"_type":"https://alexandria.dev/compromise/v1","publisher":HEX,"reason":TEXT?,"root":"sha256:HEX","size":N,
/// "time":RFC3339}` (RFC 8785 order), signed by a key that has signed for the publisher's log. The signature covers
/// exactly those payload bytes (DSSE PAE).
public struct CompromiseNotice: Sendable, Equatable {
    public static let payloadType = "application/vnd.alexandria.compromise+json"
    public static let noticeType = "https://alexandria.dev/compromise/v1"

    public let publisher: PublisherID
    public let size: Int
    public let root: ContentHash
    public let time: String
    public let reason: String?

    public init(
        publisher: PublisherID, size: Int, root: ContentHash, time: String = ISOTime.now(), reason: String? = nil
    ) throws(ManifestError) {
        guard size >= 0, size < 1 << 40 else { throw ManifestError(.malformed, "a frozen size out of range") }
        guard ISOTime.isValid(time) else { throw ManifestError(.malformed, "notice time is not RFC 3339 UTC") }
        if let reason, reason.utf8.count > LogEntry.maxReasonBytes {
            throw ManifestError(.limitExceeded, "a reason is at most \(LogEntry.maxReasonBytes) bytes")
        }
        self.publisher = publisher
        self.size = size
        self.root = root
        self.time = time
        self.reason = reason
    }

    /// The canonical payload bytes.
    public var payload: [UInt8] {
        var members: [(String, JSONValue)] = [
            ("_type", .string(Self.noticeType)), ("publisher", .string(publisher.description)),
            ("size", .int(Int64(size))), ("root", .string(root.description)), ("time", .string(time)),
        ]
        if let reason { members.append(("reason", .string(reason))) }
        return JSONValue.object(members).canonical
    }

    public init(payload: [UInt8]) throws(ManifestError) {
        let value: JSONValue
        do { value = try JSONValue.parse(payload) } catch {
            throw ManifestError(.malformed, "the compromise notice is not valid JSON: \(error)")
        }
        guard value.canonical == payload else {
            throw ManifestError(.malformed, "the compromise notice is not in RFC 8785 canonical form")
        }
        let allowed: Set<String> = ["_type", "publisher", "size", "root", "time", "reason"]
        guard let members = value.objectValue, Set(members.map(\.0)).isSubset(of: allowed),
            value["_type"]?.stringValue == Self.noticeType
        else { throw ManifestError(.malformed, "not an Alexandria compromise notice") }
        guard let publisher = value["publisher"]?.stringValue.flatMap(PublisherID.init(hex:)),
            let size = value["size"]?.intValue,
            let root = value["root"]?.stringValue.flatMap(ContentHash.init(canonical:)),
            let time = value["time"]?.stringValue
        else { throw ManifestError(.malformed, "the compromise notice lacks publisher, size, root or time") }
        var reason: String?
        if let v = value["reason"] {
            guard let s = v.stringValue else { throw ManifestError(.malformed, "reason is not a string") }
            reason = s
        }
        try self.init(publisher: publisher, size: Int(size), root: root, time: time, reason: reason)
    }
}

/// A compromise notice with its envelope, checked against the keys of the publisher's log.
public struct SignedCompromiseNotice: Sendable, Equatable {
    public let envelope: DSSEEnvelope
    public let notice: CompromiseNotice

    /// Checks that a key that has signed for `log` (any of them: a notice only removes power) signed the payload
    /// bytes received, and that the notice names that log's publisher.
    public init(envelope: DSSEEnvelope, log: PublisherLog) throws(ManifestError) {
        guard envelope.payloadType == CompromiseNotice.payloadType else {
            throw ManifestError(.malformed, "the envelope's payload type is \(envelope.payloadType), not a notice")
        }
        let notice = try CompromiseNotice(payload: envelope.payload)
        guard notice.publisher == log.publisher else {
            throw ManifestError(.unknownKey, "the notice is about publisher \(notice.publisher.short)")
        }
        guard log.keys.contains(where: { envelope.isSigned(by: $0.key) }) else {
            throw ManifestError(.badSignature, "the compromise notice is not signed by a key of the publisher's log")
        }
        self.envelope = envelope
        self.notice = notice
    }

    public static func sign(
        _ notice: CompromiseNotice, key: PublisherKey, log: PublisherLog
    ) throws
        -> SignedCompromiseNotice
    {
        let envelope = try DSSEEnvelope.sign(
            payloadType: CompromiseNotice.payloadType, payload: notice.payload, key: key)
        return try SignedCompromiseNotice(envelope: envelope, log: log)
    }
}
