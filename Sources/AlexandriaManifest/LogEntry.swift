import AlexandriaCore
import Crypto
import Foundation

/// One signed entry in a publisher's append-only log.
///
/// Wire form: a DSSE envelope, payload type `application/vnd.alexandria.log-entry+json`, payload canonical JSON:
/// `{"_type":"https://alexandria.dev/log-entry/v1","index":N,"kind":K,"publisher":HEX,"time":RFC3339,...}` plus the
/// fields of its kind. The log's Merkle leaf is the payload: leaf hash `SHA-256(0x00 || payload)`.
public struct LogEntry: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// Binds `release` to `manifest` forever.
        case publish
        /// Hides a release from `latest`; an exact fetch still works; nothing is deleted.
        case yank
        case unyank
        /// Announces an end of support, with an optional sunset date and successor.
        case deprecate
        /// A security advisory with a severity.
        case advisory
        /// Hands the log to a new key: signed by the old key and the new one.
        case rotateKey = "rotate-key"
        /// A later claim about a release, such as lineage or an imported OMS signature.
        case attest
    }

    public enum Severity: String, Sendable, CaseIterable { case low, medium, high, critical }

    public static let payloadType = "application/vnd.alexandria.log-entry+json"
    public static let entryType = "https://alexandria.dev/log-entry/v1"
    public static let maxReasonBytes = 4096
    public static let maxAttestationBytes = 64 << 10

    public let publisher: PublisherID
    public let index: Int
    public let kind: Kind
    public let time: String
    /// `name@version` for publish, yank, unyank, deprecate, advisory, attest.
    public let release: String?
    /// The manifest the entry is about.
    public let manifest: ContentHash?
    public let reason: String?
    public let sunset: String?
    public let successor: String?
    public let severity: Severity?
    /// rotate-key: the new key's SPKI DER.
    public let newKey: [UInt8]?
    /// attest: a JSON object, kept as it is.
    public let attestation: JSONValue?

    public init(
        publisher: PublisherID, index: Int, kind: Kind, time: String = ISOTime.now(), release: String? = nil,
        manifest: ContentHash? = nil, reason: String? = nil, sunset: String? = nil, successor: String? = nil,
        severity: Severity? = nil, newKey: [UInt8]? = nil, attestation: JSONValue? = nil
    ) throws(ManifestError) {
        self.publisher = publisher
        self.index = index
        self.kind = kind
        self.time = time
        self.release = release
        self.manifest = manifest
        self.reason = reason
        self.sunset = sunset
        self.successor = successor
        self.severity = severity
        self.newKey = newKey
        self.attestation = attestation
        try validate()
    }

    func validate() throws(ManifestError) {
        guard index >= 0, index < 1 << 40 else { throw ManifestError(.malformed, "log index out of range") }
        guard ISOTime.isValid(time) else { throw ManifestError(.malformed, "entry time is not RFC 3339 UTC") }
        if let reason, reason.utf8.count > Self.maxReasonBytes {
            throw ManifestError(.limitExceeded, "a reason is at most \(Self.maxReasonBytes) bytes")
        }
        switch kind {
        case .publish, .yank, .unyank, .deprecate, .advisory, .attest:
            guard let release, let at = release.firstIndex(of: "@") else {
                throw ManifestError(.malformed, "a \(kind.rawValue) entry names a release as name@version")
            }
            try ReleaseName.validate(
                name: String(release[..<at]), version: String(release[release.index(after: at)...]))
            guard manifest != nil else {
                throw ManifestError(.malformed, "a \(kind.rawValue) entry names its manifest")
            }
        case .rotateKey:
            guard let newKey, (try? P256.Signing.PublicKey(derRepresentation: newKey)) != nil else {
                throw ManifestError(.malformed, "a rotate-key entry carries the new P-256 key")
            }
        }
        if [.yank, .deprecate, .advisory].contains(kind) {
            guard let reason, !reason.isEmpty else {
                throw ManifestError(.malformed, "a \(kind.rawValue) needs a reason")
            }
        }
        if kind == .advisory, severity == nil { throw ManifestError(.malformed, "an advisory needs a severity") }
        // Each kind carries only its own fields.
        func only(_ allowed: Bool, _ present: Bool, _ name: String) throws(ManifestError) {
            if present && !allowed { throw ManifestError(.malformed, "a \(kind.rawValue) entry cannot carry \(name)") }
        }
        try only(kind == .advisory, severity != nil, "severity")
        try only(kind == .deprecate, sunset != nil || successor != nil, "sunset or successor")
        try only(kind == .rotateKey, newKey != nil, "newKey")
        try only(kind == .attest, attestation != nil, "an attestation")
        try only(kind != .rotateKey, release != nil || manifest != nil, "a release")
        if let successor, successor.utf8.count > Self.maxReasonBytes {
            throw ManifestError(.limitExceeded, "a successor is at most \(Self.maxReasonBytes) bytes")
        }
        if let sunset, !ISOTime.isValidDate(sunset) { throw ManifestError(.malformed, "sunset is not YYYY-MM-DD") }
        if let attestation {
            guard kind == .attest, attestation.objectValue != nil,
                attestation.canonical.count <= Self.maxAttestationBytes
            else { throw ManifestError(.malformed, "an attestation is a JSON object of at most 64 KiB") }
        }
    }

    /// The canonical payload bytes.
    public var payload: [UInt8] {
        var members: [(String, JSONValue)] = [
            ("_type", .string(Self.entryType)), ("publisher", .string(publisher.description)),
            ("index", .int(Int64(index))), ("kind", .string(kind.rawValue)), ("time", .string(time)),
        ]
        if let release { members.append(("release", .string(release))) }
        if let manifest { members.append(("manifest", .string(manifest.description))) }
        if let reason { members.append(("reason", .string(reason))) }
        if let sunset { members.append(("sunset", .string(sunset))) }
        if let successor { members.append(("successor", .string(successor))) }
        if let severity { members.append(("severity", .string(severity.rawValue))) }
        if let newKey { members.append(("newKey", .string(Data(newKey).base64EncodedString()))) }
        if let attestation { members.append(("attestation", attestation)) }
        return JSONValue.object(members).canonical
    }

    public init(payload: [UInt8]) throws(ManifestError) {
        let value: JSONValue
        do { value = try JSONValue.parse(payload) } catch {
            throw ManifestError(.malformed, "the log entry is not valid JSON: \(error)")
        }
        guard value.canonical == payload else {
            throw ManifestError(.malformed, "the log entry is not in RFC 8785 canonical form")
        }
        let allowed: Set<String> = [
            "_type", "publisher", "index", "kind", "time", "release", "manifest", "reason", "sunset", "successor",
            "severity", "newKey", "attestation",
        ]
        guard let members = value.objectValue, Set(members.map(\.0)).isSubset(of: allowed),
            value["_type"]?.stringValue == Self.entryType
        else { throw ManifestError(.malformed, "not an Alexandria log entry") }
        guard let publisher = value["publisher"]?.stringValue.flatMap(PublisherID.init(hex:)),
            let index = value["index"]?.intValue, let kind = value["kind"]?.stringValue.flatMap(Kind.init(rawValue:)),
            let time = value["time"]?.stringValue
        else { throw ManifestError(.malformed, "the log entry lacks publisher, index, kind or time") }
        var manifest: ContentHash?
        if let text = value["manifest"]?.stringValue {
            guard let h = ContentHash(canonical: text) else { throw ManifestError(.malformed, "bad manifest id") }
            manifest = h
        }
        var newKey: [UInt8]?
        if let text = value["newKey"]?.stringValue {
            guard let d = Data(base64Encoded: text) else { throw ManifestError(.malformed, "bad newKey") }
            newKey = Array(d)
        }
        var severity: Severity?
        if let text = value["severity"]?.stringValue {
            guard let s = Severity(rawValue: text) else { throw ManifestError(.malformed, "unknown severity \(text)") }
            severity = s
        }
        func optionalString(_ key: String) throws(ManifestError) -> String? {
            guard let v = value[key] else { return nil }
            guard let s = v.stringValue else { throw ManifestError(.malformed, "\(key) is not a string") }
            return s
        }
        try self.init(
            publisher: publisher, index: Int(index), kind: kind, time: time, release: try optionalString("release"),
            manifest: manifest, reason: try optionalString("reason"), sunset: try optionalString("sunset"),
            successor: try optionalString("successor"), severity: severity, newKey: newKey,
            attestation: value["attestation"])
    }

    /// The Merkle leaf hash of this entry: `SHA-256(0x00 || payload)`.
    public var leafHash: ContentHash { MerkleTree.leafHash(payload) }
}

/// A log entry with its envelope, checked against the key that was in force at its index.
public struct SignedLogEntry: Sendable, Equatable {
    public let envelope: DSSEEnvelope
    public let entry: LogEntry

    /// Checks the signature over the payload bytes received. A rotate-key entry must also be signed by the new key.
    public init(envelope: DSSEEnvelope, signer: P256.Signing.PublicKey) throws(ManifestError) {
        guard envelope.payloadType == LogEntry.payloadType else {
            throw ManifestError(.malformed, "the envelope's payload type is \(envelope.payloadType), not a log entry")
        }
        guard envelope.isSigned(by: signer) else {
            throw ManifestError(.badSignature, "a log entry's signature does not verify with the publisher's key")
        }
        let entry = try LogEntry(payload: envelope.payload)
        if entry.kind == .rotateKey {
            guard let der = entry.newKey, let newKey = try? P256.Signing.PublicKey(derRepresentation: der),
                envelope.isSigned(by: newKey)
            else { throw ManifestError(.badSignature, "a key rotation must be signed by both the old and the new key") }
        }
        self.envelope = envelope
        self.entry = entry
    }

    public static func sign(_ entry: LogEntry, key: PublisherKey, newKey: PublisherKey? = nil) throws -> SignedLogEntry
    {
        var envelope = try DSSEEnvelope.sign(payloadType: LogEntry.payloadType, payload: entry.payload, key: key)
        if let newKey { envelope = try envelope.addingSignature(of: newKey) }
        return try SignedLogEntry(envelope: envelope, signer: key.publicKey)
    }
}
