import AlexandriaCore
import Crypto
import Foundation

/// A publisher log's signed tree head, in the C2SP tlog-checkpoint format: a signed note whose text is
/// `<origin>\n<size>\n<base64 root>\n`, signed with the publisher key as note signature type 0x02 (ECDSA P-256,
/// key ID = first four bytes of SHA-256 of the SPKI DER, signature = ASN.1 DER ECDSA-SHA256 over the note text).
/// The origin is `alexandria.dev/publisher/<publisher id hex>`.
///
/// Witnesses add Ed25519 cosignature lines (C2SP tlog-cosignature, type 0x04) to the same note.
public struct Checkpoint: Sendable, Equatable {
    public let origin: String
    public let size: Int
    public let root: ContentHash

    public static let maxNoteBytes = 16 << 10
    public static let maxSignatures = 64

    public init(publisher: PublisherID, size: Int, root: ContentHash) {
        origin = Self.origin(for: publisher)
        self.size = size
        self.root = root
    }

    public static func origin(for publisher: PublisherID) -> String { "alexandria.dev/publisher/\(publisher)" }

    /// The note text the signatures cover, byte for byte.
    public var text: String { "\(origin)\n\(size)\n\(Data(root.bytes).base64EncodedString())\n" }

    public var publisher: PublisherID? {
        let prefix = "alexandria.dev/publisher/"
        guard origin.hasPrefix(prefix) else { return nil }
        return PublisherID(hex: String(origin.dropFirst(prefix.count)))
    }

    /// The 4-byte key ID of a publisher key in signature lines.
    public static func keyID(_ key: P256.Signing.PublicKey) -> [UInt8] {
        Array(SHA256.hash(data: key.derRepresentation).prefix(4))
    }

    /// Signs this checkpoint: the whole signed note.
    public func sign(with key: PublisherKey) throws -> SignedNote {
        let body = Array(text.utf8)
        let signature = try key.sign(body)
        let line = SignedNote.Line(name: origin, keyID: Self.keyID(key.publicKey), signature: signature)
        return SignedNote(text: text, lines: [line])
    }

    /// Parses the note text of a checkpoint (origin, size, root; extension lines refused).
    public init(text: String) throws(ManifestError) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard text.hasSuffix("\n"), lines.count == 4, lines[3].isEmpty, !lines[0].isEmpty else {
            throw ManifestError(.malformed, "a checkpoint has exactly three lines: origin, size, root")
        }
        guard let size = Int(lines[1]), size >= 0, String(size) == lines[1] else {
            throw ManifestError(.malformed, "the checkpoint size is not a decimal without leading zeros")
        }
        guard let rootBytes = Data(base64Encoded: String(lines[2])), let root = ContentHash(bytes: rootBytes) else {
            throw ManifestError(.malformed, "the checkpoint root is not base64 of 32 bytes")
        }
        origin = String(lines[0])
        self.size = size
        self.root = root
    }
}

/// A C2SP signed note: text, a blank line, then signature lines `— <name> base64(keyID(4) || signature)`.
public struct SignedNote: Sendable, Equatable {
    public struct Line: Sendable, Equatable {
        public let name: String
        public let keyID: [UInt8]
        public let signature: [UInt8]
    }

    public let text: String
    public let lines: [Line]

    public init(text: String, lines: [Line]) {
        self.text = text
        self.lines = lines
    }

    public var serialized: String {
        text + "\n"
            + lines.map { "\u{2014} \($0.name) \(Data($0.keyID + $0.signature).base64EncodedString())\n" }.joined()
    }

    /// Parses a note strictly: UTF-8 with no control characters but newline, the text ends at the last blank line,
    /// every signature line well formed, at most `Checkpoint.maxSignatures` lines.
    public init(parsing note: String) throws(ManifestError) {
        guard note.utf8.count <= Checkpoint.maxNoteBytes else {
            throw ManifestError(.limitExceeded, "a note is at most \(Checkpoint.maxNoteBytes) bytes")
        }
        guard note.utf8.allSatisfy({ $0 >= 0x20 || $0 == 0x0a }) else {
            throw ManifestError(.malformed, "a note contains a control character")
        }
        guard let split = note.range(of: "\n\n", options: .backwards) else {
            throw ManifestError(.malformed, "a note has no blank line before its signatures")
        }
        let text = String(note[..<split.lowerBound]) + "\n"
        let signatureBlock = note[split.upperBound...]
        guard signatureBlock.hasSuffix("\n") else { throw ManifestError(.malformed, "a note must end in a newline") }
        var lines: [Line] = []
        for raw in signatureBlock.dropLast().split(separator: "\n", omittingEmptySubsequences: false) {
            let parts = raw.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "\u{2014}", !parts[1].isEmpty, !parts[1].contains("+"),
                let decoded = Data(base64Encoded: String(parts[2])), decoded.count > 4
            else { throw ManifestError(.malformed, "a note signature line is malformed") }
            lines.append(
                Line(name: String(parts[1]), keyID: Array(decoded.prefix(4)), signature: Array(decoded.dropFirst(4))))
        }
        guard !lines.isEmpty, lines.count <= Checkpoint.maxSignatures else {
            throw ManifestError(.limitExceeded, "a note carries 1 to \(Checkpoint.maxSignatures) signatures")
        }
        self.text = text
        self.lines = lines
    }

    /// Verifies the publisher's signature line and returns the checkpoint. Unknown lines (witnesses) are ignored
    /// here, as the signed-note spec requires; a line with the publisher's name and key ID that fails rejects all.
    public func verifiedCheckpoint(
        publisherKey: P256.Signing.PublicKey, publisher: PublisherID? = nil
    )
        throws(ManifestError) -> Checkpoint
    {
        let checkpoint = try Checkpoint(text: text)
        // Without `publisher`, the key must be the publisher's first key; with it, the caller vouches (from the log's
        // rotation entries) that the key signs for that publisher.
        guard checkpoint.publisher == (publisher ?? PublisherID(publicKey: publisherKey)) else {
            throw ManifestError(.unknownKey, "the checkpoint's origin is not this publisher")
        }
        let keyID = Checkpoint.keyID(publisherKey)
        let mine = lines.filter { $0.name == checkpoint.origin && $0.keyID == keyID }
        guard !mine.isEmpty else {
            throw ManifestError(.unknownKey, "the checkpoint is not signed by the publisher's key")
        }
        for line in mine where !publisherKey.isValid(derSignature: line.signature, for: Array(text.utf8)) {
            throw ManifestError(.badSignature, "the checkpoint's signature does not verify")
        }
        return checkpoint
    }

    /// The note with one more signature line (a witness cosignature).
    public func adding(_ line: Line) -> SignedNote { SignedNote(text: text, lines: lines + [line]) }
}
