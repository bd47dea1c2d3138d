import AlexandriaCore
import Crypto

/// A publisher's identity: an ECDSA P-256 public key, named by the SHA-256 of its DER SubjectPublicKeyInfo.
///
/// P-256 because OpenSSF Model Signing's key method takes elliptic-curve keys, and a release must export as a bundle
/// that `model_signing verify key` accepts with the same public key (Protocol/manifest-v1.md, "Keys").
public struct PublisherID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// SHA-256 of the SPKI DER encoding of the public key.
    public let fingerprint: ContentHash

    public init(fingerprint: ContentHash) { self.fingerprint = fingerprint }

    public init(publicKey: P256.Signing.PublicKey) {
        fingerprint = ContentHash.of(publicKey.derRepresentation)
    }

    /// 64 lowercase hex digits: the form used in release names and JSON.
    public var description: String { fingerprint.hex }

    /// The first 16 hex digits, for people.
    public var short: String { String(fingerprint.hex.prefix(16)) }

    public init?(hex: String) {
        guard hex.utf8.count == 64, let h = ContentHash(canonical: "sha256:" + hex) else { return nil }
        fingerprint = h
    }

    public static func < (lhs: PublisherID, rhs: PublisherID) -> Bool { lhs.fingerprint < rhs.fingerprint }
}

/// A publisher's signing key.
public struct PublisherKey: Sendable {
    public let privateKey: P256.Signing.PrivateKey

    public init(privateKey: P256.Signing.PrivateKey) { self.privateKey = privateKey }

    public static func generate() -> PublisherKey { PublisherKey(privateKey: P256.Signing.PrivateKey()) }

    public var publicKey: P256.Signing.PublicKey { privateKey.publicKey }
    public var id: PublisherID { PublisherID(publicKey: publicKey) }

    /// ECDSA-P256-SHA256 over `message`, DER-encoded (the encoding DSSE, sigstore and C2SP note type 0x02 use).
    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        Array(try privateKey.signature(for: message).derRepresentation)
    }

    /// Unencrypted PKCS#8 PEM, for the key file in the home (mode 0600).
    public var pem: String { privateKey.pemRepresentation }

    public init(pem: String) throws(ManifestError) {
        do { privateKey = try P256.Signing.PrivateKey(pemRepresentation: pem) } catch {
            throw ManifestError(.badKey, "not a P-256 private key in PEM: \(error)")
        }
    }

    /// Encrypted PKCS#8 PEM under `passphrase` (PBES2, AES-256-CBC), readable by `openssl pkey`.
    public func encryptedPEM(passphrase: [UInt8]) throws(ManifestError) -> String {
        try PEMCrypt.encrypt(privateKeyDER: Array(privateKey.derRepresentation), passphrase: passphrase)
    }

    /// Reads an encrypted (or plain) PEM private key.
    public init(encryptedPEM pem: String, passphrase: [UInt8]) throws(ManifestError) {
        let der = try PEMCrypt.decrypt(pem: pem, passphrase: passphrase)
        do { privateKey = try P256.Signing.PrivateKey(derRepresentation: der) } catch {
            throw ManifestError(.badKey, "the key is not an ECDSA P-256 key; Alexandria publishers use P-256")
        }
    }
}

extension P256.Signing.PublicKey {
    /// Whether `signature` (DER) is a valid ECDSA-P256-SHA256 signature over `message`.
    public func isValid(derSignature signature: [UInt8], for message: [UInt8]) -> Bool {
        guard let s = try? P256.Signing.ECDSASignature(derRepresentation: signature) else { return false }
        return isValidSignature(s, for: message)
    }
}
