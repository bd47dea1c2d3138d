import AlexandriaCore
import AlexandriaManifest
import Crypto
import Foundation

/// OpenSSF Model Signing interop (Protocol/oms-interop.md): a release as a sigstore bundle that
/// `model_signing verify key DIR --signature BUNDLE --public_key PUB.pem` accepts, and the check of such a bundle.
public enum OMSBundle {
    static let predicateType = "https://model_signing/signature/v1.0"
    static let mediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

    /// The bundle for `manifest`, signed by the publisher's key.
    ///
    /// Resources are the files sorted by path, each `{"name", "algorithm": "sha256", "digest"}` (whole-file SHA-256:
    /// the Alexandria address); the single subject's digest is SHA-256 over the 32-byte digests in that order.
    public static func export(_ signed: SignedManifest, key: PublisherKey, ignorePaths: [String] = []) throws -> [UInt8]
    {
        let files = signed.manifest.files.sorted { $0.path < $1.path }
        var concatenated: [UInt8] = []
        for f in files { concatenated += f.sha256.bytes }
        let root = ContentHash.of(concatenated)
        var serialization: [(String, JSONValue)] = [
            ("method", .string("files")), ("hash_type", .string("sha256")), ("allow_symlinks", .bool(false)),
        ]
        if !ignorePaths.isEmpty { serialization.append(("ignore_paths", .array(ignorePaths.map { .string($0) }))) }
        let statement = JSONValue.object([
            ("_type", .string(Manifest.statementType)),
            (
                "subject",
                .array([
                    .object([
                        ("name", .string(signed.manifest.release.description)),
                        ("digest", .object([("sha256", .string(root.hex))])),
                    ])
                ])
            ),
            ("predicateType", .string(predicateType)),
            (
                "predicate",
                .object([
                    ("serialization", .object(serialization)),
                    (
                        "resources",
                        .array(
                            files.map {
                                .object([
                                    ("name", .string($0.path)), ("algorithm", .string("sha256")),
                                    ("digest", .string($0.sha256.hex)),
                                ])
                            })
                    ),
                ])
            ),
        ])
        let payload = statement.canonical
        let signature = try key.sign(DSSEEnvelope.pae(payloadType: Manifest.payloadType, payload: payload))
        let hint = ContentHash.of(Array((key.publicKey.pemRepresentation + "\n").utf8)).hex
        let bundle = JSONValue.object([
            ("mediaType", .string(mediaType)),
            (
                "verificationMaterial",
                .object([("publicKey", .object([("hint", .string(hint))])), ("tlogEntries", .array([]))])
            ),
            (
                "dsseEnvelope",
                .object([
                    ("payload", .string(Data(payload).base64EncodedString())),
                    ("payloadType", .string(Manifest.payloadType)),
                    (
                        "signatures",
                        .array([
                            .object([("sig", .string(Data(signature).base64EncodedString())), ("keyid", .string(""))])
                        ])
                    ),
                ])
            ),
        ])
        return bundle.canonical
    }

    /// What a verified OMS bundle says: the signed file digests.
    public struct Verified: Sendable {
        public let resources: [String: ContentHash]
        public let keyFingerprint: PublisherID
    }

    /// Checks an OMS bundle made by `model_signing sign key` (or by `export`) with the signer's public key: the DSSE
    /// signature over the payload bytes received, the statement's shape, and the subject digest over the resources.
    public static func verify(bundle bytes: [UInt8], publicKey: P256.Signing.PublicKey) throws -> Verified {
        let bundle = try JSONValue.parse(bytes)
        guard bundle["mediaType"]?.stringValue == mediaType, let env = bundle["dsseEnvelope"],
            env["payloadType"]?.stringValue == Manifest.payloadType,
            let payload = env["payload"]?.stringValue.flatMap({ Data(base64Encoded: $0) }),
            let sig = env["signatures"]?.arrayValue?.first?["sig"]?.stringValue.flatMap({ Data(base64Encoded: $0) })
        else { throw ManifestError(.malformed, "not an OpenSSF Model Signing bundle") }
        guard
            publicKey.isValid(
                derSignature: Array(sig),
                for: DSSEEnvelope.pae(payloadType: Manifest.payloadType, payload: Array(payload)))
        else { throw ManifestError(.badSignature, "the OMS bundle's signature does not verify with that key") }
        let statement = try JSONValue.parse(Array(payload))
        guard statement["predicateType"]?.stringValue == predicateType,
            statement["predicate"]?["serialization"]?["method"]?.stringValue == "files",
            statement["predicate"]?["serialization"]?["hash_type"]?.stringValue == "sha256",
            let resources = statement["predicate"]?["resources"]?.arrayValue,
            let subject = statement["subject"]?.arrayValue, subject.count == 1,
            let rootHex = subject[0]["digest"]?["sha256"]?.stringValue
        else { throw ManifestError(.malformed, "the OMS statement is not a file-level sha256 signature") }
        var digests: [String: ContentHash] = [:]
        var concatenated: [UInt8] = []
        for r in resources {
            guard let name = r["name"]?.stringValue, r["algorithm"]?.stringValue == "sha256",
                let hex = r["digest"]?.stringValue, let h = ContentHash(canonical: "sha256:" + hex)
            else { throw ManifestError(.malformed, "an OMS resource is malformed") }
            digests[name] = h
            concatenated += h.bytes
        }
        guard ContentHash.of(concatenated).hex == rootHex else {
            throw ManifestError(.malformed, "the OMS subject digest does not cover the resources")
        }
        return Verified(resources: digests, keyFingerprint: PublisherID(publicKey: publicKey))
    }
}
