import AlexandriaCore
import Crypto
import Foundation

/// Self-contained evidence that a publisher signed two incompatible things. Anyone can check it offline with
/// nothing but the proof: it carries the signed objects and the key that signed them.
public struct EquivocationProof: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// Two different manifests signed for the same `publisher/name@version`.
        case manifests
        /// Two checkpoints of one log with the same size and different roots.
        case checkpoints
        /// Two different log entries signed for the same index.
        case entries
    }

    public let kind: Kind
    /// SPKI DER of the key that signed both (its fingerprint is the publisher id, or a rotation proves it).
    public let publisherKey: [UInt8]
    public let first: [UInt8]
    public let second: [UInt8]

    public init(kind: Kind, publisherKey: P256.Signing.PublicKey, first: [UInt8], second: [UInt8]) {
        self.kind = kind
        self.publisherKey = Array(publisherKey.derRepresentation)
        self.first = first
        self.second = second
    }

    /// What the proof shows, once checked: the release (or log position) and the two conflicting ids.
    public struct Finding: Sendable, Equatable {
        public let publisher: PublisherID
        public let subject: String
        public let firstID: ContentHash
        public let secondID: ContentHash
    }

    /// Checks the proof. Throws unless both objects are validly signed by the key and really conflict.
    public func verify() throws(ManifestError) -> Finding {
        guard let key = try? P256.Signing.PublicKey(derRepresentation: publisherKey) else {
            throw ManifestError(.malformed, "the proof's key is not a P-256 key")
        }
        switch kind {
        case .manifests:
            let a = try SignedManifest(envelope: try DSSEEnvelope(json: first), publicKey: key)
            let b = try SignedManifest(envelope: try DSSEEnvelope(json: second), publicKey: key)
            guard a.manifest.release == b.manifest.release, a.id != b.id else {
                throw ManifestError(.malformed, "the two manifests do not conflict")
            }
            return Finding(
                publisher: a.manifest.publisher, subject: a.manifest.release.description, firstID: a.id, secondID: b.id)
        case .entries:
            let a = try SignedLogEntry(envelope: try DSSEEnvelope(json: first), signer: key)
            let b = try SignedLogEntry(envelope: try DSSEEnvelope(json: second), signer: key)
            guard PublisherID(publicKey: key) == a.entry.publisher else {
                throw ManifestError(.unknownKey, "the proof's key is not the key of the publisher the entries name")
            }
            guard a.entry.publisher == b.entry.publisher, a.entry.index == b.entry.index,
                a.envelope.payload != b.envelope.payload
            else { throw ManifestError(.malformed, "the two log entries do not conflict") }
            return Finding(
                publisher: a.entry.publisher, subject: "log entry \(a.entry.index)",
                firstID: ContentHash.of(a.envelope.payload), secondID: ContentHash.of(b.envelope.payload))
        case .checkpoints:
            let a = try SignedNote(parsing: String(decoding: first, as: UTF8.self)).verifiedCheckpoint(
                publisherKey: key)
            let b = try SignedNote(parsing: String(decoding: second, as: UTF8.self)).verifiedCheckpoint(
                publisherKey: key)
            guard a.origin == b.origin, a.size == b.size, a.root != b.root, let publisher = a.publisher else {
                throw ManifestError(.malformed, "the two checkpoints do not conflict")
            }
            return Finding(
                publisher: publisher, subject: "checkpoint of size \(a.size)", firstID: a.root, secondID: b.root)
        }
    }

    /// `{"kind":..., "publisherKey": base64, "first": base64, "second": base64}`, canonical.
    public var json: [UInt8] {
        JSONValue.object([
            ("kind", .string(kind.rawValue)), ("publisherKey", .string(Data(publisherKey).base64EncodedString())),
            ("first", .string(Data(first).base64EncodedString())),
            ("second", .string(Data(second).base64EncodedString())),
        ]).canonical
    }

    public init(json bytes: [UInt8]) throws(ManifestError) {
        let value: JSONValue
        do { value = try JSONValue.parse(bytes) } catch {
            throw ManifestError(.malformed, "the proof is not JSON: \(error)")
        }
        guard let kind = value["kind"]?.stringValue.flatMap(Kind.init(rawValue:)),
            let key = value["publisherKey"]?.stringValue.flatMap({ Data(base64Encoded: $0) }),
            let a = value["first"]?.stringValue.flatMap({ Data(base64Encoded: $0) }),
            let b = value["second"]?.stringValue.flatMap({ Data(base64Encoded: $0) }), value.objectValue?.count == 4
        else { throw ManifestError(.malformed, "the proof is malformed") }
        self.kind = kind
        self.publisherKey = Array(key)
        self.first = Array(a)
        self.second = Array(b)
    }

    /// A stable id for deduplication: SHA-256 of the canonical JSON with the two objects in sorted order.
    public var id: ContentHash {
        let (x, y) = first.lexicographicallyPrecedes(second) ? (first, second) : (second, first)
        return ContentHash.of(
            JSONValue.object([
                ("kind", .string(kind.rawValue)), ("a", .string(Data(x).base64EncodedString())),
                ("b", .string(Data(y).base64EncodedString())),
            ]).canonical)
    }
}
