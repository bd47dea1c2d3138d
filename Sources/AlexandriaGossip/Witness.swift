import AlexandriaCore
import Crypto
import Foundation

/// What a gossip item failed.
public struct GossipError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        case malformed, badSignature, tooLarge, stale
    }
    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code.rawValue): \(message)" }
}

/// A node key as it names a witness: `alexandria.dev/node/<64 hex of the Ed25519 public key>`. The name carries the
/// whole key, so a cosignature verifies without any other lookup.
public enum WitnessName {
    public static let prefix = "alexandria.dev/node/"
    public static func of(_ publicKey: [UInt8]) -> String { prefix + Hex.encode(publicKey) }
    public static func key(in name: String) -> [UInt8]? {
        guard name.hasPrefix(prefix), let bytes = Hex.decode(String(name.dropFirst(prefix.count))), bytes.count == 32
        else { return nil }
        return bytes
    }
}

/// A witness cosignature of a publisher checkpoint, in the C2SP `cosignature/v1` format (signed-note type 0x04).
///
/// The witness signs, with its node key (Ed25519), the bytes
/// `"cosignature/v1\ntime " || decimal(timestamp) || "\n" || checkpoint text` where the checkpoint text is the note
/// body (origin, size, base64 root, each followed by a newline). The note line is
/// `— <witness name> base64(key id (4) || timestamp (8, big-endian) || signature (64))`, and the key id is
/// `SHA-256(name || 0x0A || 0x04 || public key)[0..<4]`.
///
/// As a gossip item the body is the checkpoint text followed by the blank line and that one signature line, i.e. a
/// signed note whose only signature is the cosignature.
public struct Cosignature: Sendable, Equatable {
    public let checkpointText: String
    public let witnessKey: [UInt8]
    public let timestamp: UInt64
    public let signature: [UInt8]

    public var witnessName: String { WitnessName.of(witnessKey) }

    public static func keyID(name: String, key: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: Array(name.utf8) + [0x0A, 0x04] + key).prefix(4))
    }

    static func message(checkpointText: String, timestamp: UInt64) -> [UInt8] {
        Array("cosignature/v1\ntime \(timestamp)\n".utf8) + Array(checkpointText.utf8)
    }

    /// Signs `checkpointText` now.
    public static func sign(
        checkpointText: String, key: Curve25519.Signing.PrivateKey,
        timestamp: UInt64 = UInt64(Date().timeIntervalSince1970)
    ) throws -> Cosignature {
        let signature = try key.signature(for: message(checkpointText: checkpointText, timestamp: timestamp))
        return Cosignature(
            checkpointText: checkpointText, witnessKey: Array(key.publicKey.rawRepresentation), timestamp: timestamp,
            signature: Array(signature))
    }

    /// Unchecked parts; only `sign` and `init(body:)` (which verifies) make a `Cosignature` outside this module.
    init(checkpointText: String, witnessKey: [UInt8], timestamp: UInt64, signature: [UInt8]) {
        self.checkpointText = checkpointText
        self.witnessKey = witnessKey
        self.timestamp = timestamp
        self.signature = signature
    }

    /// The note line's base64 part.
    var lineValue: [UInt8] {
        var out = Self.keyID(name: witnessName, key: witnessKey)
        for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: timestamp >> UInt64(s))) }
        return out + signature
    }

    /// The gossip item body: checkpoint text, a blank line, one signature line.
    public var body: [UInt8] {
        Array("\(checkpointText)\n\u{2014} \(witnessName) \(Data(lineValue).base64EncodedString())\n".utf8)
    }

    public var item: CatalogItem { CatalogItem(kind: .cosignature, body: body) }

    /// Parses and verifies an item body. Throws for anything malformed or a signature that does not verify.
    public init(body: [UInt8]) throws(GossipError) {
        guard body.count <= 16 << 10, let text = String(validating: body, as: UTF8.self) else {
            throw GossipError(.malformed, "a cosignature is UTF-8 text of at most 16 KiB")
        }
        guard let split = text.range(of: "\n\n") else {
            throw GossipError(.malformed, "a cosignature has no blank line")
        }
        let checkpointText = String(text[..<split.lowerBound]) + "\n"
        let rest = text[split.upperBound...]
        guard rest.hasSuffix("\n"), !rest.dropLast().contains("\n") else {
            throw GossipError(.malformed, "a cosignature item has exactly one signature line")
        }
        let parts = rest.dropLast().split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "\u{2014}", let key = WitnessName.key(in: String(parts[1])),
            let raw = Data(base64Encoded: String(parts[2])).map(Array.init), raw.count == 4 + 8 + 64
        else { throw GossipError(.malformed, "the cosignature line is not `— alexandria.dev/node/<hex> <base64>`") }
        guard Array(raw[0..<4]) == Self.keyID(name: String(parts[1]), key: key) else {
            throw GossipError(.malformed, "the cosignature's key id does not match its name")
        }
        var ts: UInt64 = 0
        for b in raw[4..<12] { ts = ts << 8 | UInt64(b) }
        self.init(checkpointText: checkpointText, witnessKey: key, timestamp: ts, signature: Array(raw[12...]))
        guard
            Ed25519Strict.isValidSignature(
                signature, message: Self.message(checkpointText: checkpointText, timestamp: ts), publicKey: key)
        else { throw GossipError(.badSignature, "the cosignature does not verify (strict Ed25519)") }
    }
}

/// A node's signed statement about one release: it holds every chunk of every file (`holds`), or it no longer does.
/// A newer statement by the same node about the same manifest replaces the older one.
///
/// Body (big-endian): `"ALXA" || version u8 (1) || node key (32) || manifest id (32) || timestamp ms u64 ||
/// holds u8 || Ed25519 signature (64)` over every byte before the signature.
public struct AvailabilityStatement: Sendable, Equatable {
    public let nodeKey: [UInt8]
    public let manifest: ContentHash
    public let timestampMillis: UInt64
    public let holds: Bool

    static let magic = Array("ALXA".utf8)

    public init(nodeKey: [UInt8], manifest: ContentHash, timestampMillis: UInt64, holds: Bool) {
        self.nodeKey = nodeKey
        self.manifest = manifest
        self.timestampMillis = timestampMillis
        self.holds = holds
    }

    var signedBytes: [UInt8] {
        var out = Self.magic + [1] + nodeKey + manifest.bytes
        for s in stride(from: 56, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: timestampMillis >> UInt64(s)))
        }
        out.append(holds ? 1 : 0)
        return out
    }

    public func signed(with key: Curve25519.Signing.PrivateKey) throws -> CatalogItem {
        let bytes = signedBytes
        return CatalogItem(kind: .availability, body: bytes + Array(try key.signature(for: bytes)))
    }

    /// Parses and verifies an item body.
    public init(body: [UInt8]) throws(GossipError) {
        guard body.count == 4 + 1 + 32 + 32 + 8 + 1 + 64, Array(body[0..<4]) == Self.magic, body[4] == 1 else {
            throw GossipError(.malformed, "not an availability v1 statement")
        }
        var ts: UInt64 = 0
        for b in body[69..<77] { ts = ts << 8 | UInt64(b) }
        guard body[77] <= 1 else { throw GossipError(.malformed, "availability flag out of range") }
        self.init(
            nodeKey: Array(body[5..<37]), manifest: ContentHash(bytes: body[37..<69])!, timestampMillis: ts,
            holds: body[77] == 1)
        guard Ed25519Strict.isValidSignature(Array(body[78...]), message: Array(body[0..<78]), publicKey: nodeKey)
        else { throw GossipError(.badSignature, "the availability statement does not verify (strict Ed25519)") }
    }
}

/// A node's signed demand counts: how many fetches of each release it served or made in its recent window.
/// A newer report by the same node replaces the older one.
///
/// Body (big-endian): `"ALXD" || version u8 (1) || node key (32) || timestamp ms u64 || count u16 ||
/// count × (manifest id (32) || fetches u32) || Ed25519 signature (64)` over every byte before the signature.
public struct DemandReport: Sendable, Equatable {
    public let nodeKey: [UInt8]
    public let timestampMillis: UInt64
    public let counts: [(manifest: ContentHash, fetches: UInt32)]

    static let magic = Array("ALXD".utf8)

    public init(nodeKey: [UInt8], timestampMillis: UInt64, counts: [(manifest: ContentHash, fetches: UInt32)]) {
        self.nodeKey = nodeKey
        self.timestampMillis = timestampMillis
        self.counts = Array(counts.prefix(GossipLimits.maxDemandEntries))
    }

    public static func == (a: DemandReport, b: DemandReport) -> Bool { a.signedBytes == b.signedBytes }

    var signedBytes: [UInt8] {
        var out = Self.magic + [1] + nodeKey
        for s in stride(from: 56, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: timestampMillis >> UInt64(s)))
        }
        out += [UInt8(counts.count >> 8), UInt8(counts.count & 0xff)]
        for c in counts {
            out += c.manifest.bytes
            for s in stride(from: 24, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: c.fetches >> UInt32(s)))
            }
        }
        return out
    }

    public func signed(with key: Curve25519.Signing.PrivateKey) throws -> CatalogItem {
        let bytes = signedBytes
        return CatalogItem(kind: .demand, body: bytes + Array(try key.signature(for: bytes)))
    }

    public init(body: [UInt8]) throws(GossipError) {
        guard body.count >= 4 + 1 + 32 + 8 + 2 + 64, Array(body[0..<4]) == Self.magic, body[4] == 1 else {
            throw GossipError(.malformed, "not a demand v1 report")
        }
        var ts: UInt64 = 0
        for b in body[37..<45] { ts = ts << 8 | UInt64(b) }
        let n = Int(body[45]) << 8 | Int(body[46])
        guard n <= GossipLimits.maxDemandEntries, body.count == 47 + n * 36 + 64 else {
            throw GossipError(.malformed, "demand report length does not match its count")
        }
        var counts: [(ContentHash, UInt32)] = []
        for i in 0..<n {
            let at = 47 + i * 36
            var f: UInt32 = 0
            for b in body[(at + 32)..<(at + 36)] { f = f << 8 | UInt32(b) }
            counts.append((ContentHash(bytes: body[at..<(at + 32)])!, f))
        }
        self.init(nodeKey: Array(body[5..<37]), timestampMillis: ts, counts: counts)
        let signedEnd = body.count - 64
        guard
            Ed25519Strict.isValidSignature(
                Array(body[signedEnd...]), message: Array(body[0..<signedEnd]), publicKey: nodeKey)
        else { throw GossipError(.badSignature, "the demand report does not verify (strict Ed25519)") }
    }
}
