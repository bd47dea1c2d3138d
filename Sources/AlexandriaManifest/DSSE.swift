import AlexandriaCore
import Crypto
import Foundation

/// A DSSE envelope (github.com/secure-systems-lab/dsse, protocol v1).
///
/// Each signature covers `PAE(payloadType, payload)` =
/// `"DSSEv1" SP LEN(payloadType) SP payloadType SP LEN(payload) SP payload`, with LEN the decimal byte count,
/// over the *decoded payload bytes as received*. Verification never re-serialises anything.
public struct DSSEEnvelope: Sendable, Equatable {
    public struct Signature: Sendable, Equatable {
        public let keyID: String
        public let signature: [UInt8]
    }

    public let payloadType: String
    public let payload: [UInt8]
    public let signatures: [Signature]

    /// Most signatures one envelope may carry.
    public static let maxSignatures = 16

    public init(payloadType: String, payload: [UInt8], signatures: [Signature]) {
        self.payloadType = payloadType
        self.payload = payload
        self.signatures = signatures
    }

    /// Signs `payload` with `key` (key id: the publisher id in hex).
    public static func sign(payloadType: String, payload: [UInt8], key: PublisherKey) throws -> DSSEEnvelope {
        let sig = try key.sign(pae(payloadType: payloadType, payload: payload))
        return DSSEEnvelope(
            payloadType: payloadType, payload: payload,
            signatures: [Signature(keyID: key.id.description, signature: sig)])
    }

    public static func pae(payloadType: String, payload: [UInt8]) -> [UInt8] {
        let type = Array(payloadType.utf8)
        return Array("DSSEv1 \(type.count) ".utf8) + type + Array(" \(payload.count) ".utf8) + payload
    }

    /// Adds another signature over the same bytes (key rotation entries carry two).
    public func addingSignature(of key: PublisherKey) throws -> DSSEEnvelope {
        let sig = try key.sign(Self.pae(payloadType: payloadType, payload: payload))
        return DSSEEnvelope(
            payloadType: payloadType, payload: payload,
            signatures: signatures + [Signature(keyID: key.id.description, signature: sig)])
    }

    /// Whether a signature by `publicKey` (named by its publisher id) verifies over this envelope's bytes.
    public func isSigned(by publicKey: P256.Signing.PublicKey) -> Bool {
        let id = PublisherID(publicKey: publicKey).description
        let message = Self.pae(payloadType: payloadType, payload: payload)
        return signatures.contains { $0.keyID == id && publicKey.isValid(derSignature: $0.signature, for: message) }
    }

    /// The JSON form: `{"payload": base64, "payloadType": ..., "signatures": [{"keyid": ..., "sig": base64}]}`,
    /// canonical (so the same envelope always has the same bytes on disk and on the wire).
    public var json: [UInt8] {
        JSONValue.object([
            ("payload", .string(Data(payload).base64EncodedString())),
            ("payloadType", .string(payloadType)),
            (
                "signatures",
                .array(
                    signatures.map {
                        .object([
                            ("keyid", .string($0.keyID)), ("sig", .string(Data($0.signature).base64EncodedString())),
                        ])
                    })
            ),
        ]).canonical
    }

    /// Parses an envelope strictly: exactly these fields, standard base64, 1 to `maxSignatures` signatures.
    public init(json bytes: [UInt8]) throws(ManifestError) {
        let value: JSONValue
        do { value = try JSONValue.parse(bytes) } catch {
            throw ManifestError(.malformed, "the envelope is not valid JSON: \(error)")
        }
        guard let members = value.objectValue else { throw ManifestError(.malformed, "the envelope is not an object") }
        let keys = Set(members.map(\.0))
        guard keys == ["payload", "payloadType", "signatures"] else {
            throw ManifestError(
                .malformed,
                "the envelope must have exactly payload, payloadType and signatures; it has \(keys.sorted())")
        }
        guard let type = value["payloadType"]?.stringValue, let encoded = value["payload"]?.stringValue,
            let payload = Data(base64Encoded: encoded), let sigs = value["signatures"]?.arrayValue
        else { throw ManifestError(.malformed, "the envelope's fields have the wrong types or bad base64") }
        guard !sigs.isEmpty, sigs.count <= Self.maxSignatures else {
            throw ManifestError(.limitExceeded, "an envelope carries 1 to \(Self.maxSignatures) signatures")
        }
        var signatures: [Signature] = []
        for sig in sigs {
            guard let keyID = sig["keyid"]?.stringValue, let text = sig["sig"]?.stringValue,
                let bytes = Data(base64Encoded: text), bytes.count <= 256, sig.objectValue?.count == 2
            else { throw ManifestError(.malformed, "a signature entry is malformed") }
            signatures.append(Signature(keyID: keyID, signature: Array(bytes)))
        }
        self.init(payloadType: type, payload: Array(payload), signatures: signatures)
    }
}
