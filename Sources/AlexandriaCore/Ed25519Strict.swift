import Crypto

/// Strict Ed25519: the one place every signature by a node key (handshake AUTH, witness cosignatures, availability
/// and demand statements) is checked.
///
/// RFC 8032 verification alone accepts keys and signatures that prove nothing. A public key of small order (one of
/// the eight points of order 1, 2, 4 or 8) with R = the identity and S = 0 satisfies `[S]B = R + [k]A` for every
/// message under cofactored checks, and some implementations accept it outright: anyone can "sign" as that key.
/// Non-canonical encodings (a y coordinate ≥ p, the sign bit set on a point whose x is 0, S ≥ L) give one key or
/// signature several byte strings, so two nodes can disagree on whether two items are the same.
///
/// So before the curve arithmetic this refuses:
/// - a public key or R whose y (the low 255 bits, little-endian) is ≥ p = 2^255 - 19 (non-canonical);
/// - a public key or R that encodes a small-order point, in any encoding (libsodium's list, sign bit ignored);
/// - the sign bit set where x = 0 (y = 1 or y = p - 1: non-canonical);
/// - S ≥ L = 2^252 + 27742317777372353535851937790883648493 (non-canonical S, malleable).
/// The vectors in `Protocol/test-vectors/ed25519-strict/` are made by an independent Python script.
public enum Ed25519Strict {
    /// The small-order points with the sign bit cleared: 0 (order 4), 1 (order 1), two points of order 8, p-1
    /// (order 2), p and p+1 (non-canonical 0 and 1).
    static let smallOrder: [[UInt8]] = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ].map { Hex.decode($0)! }

    /// p = 2^255 - 19, little-endian.
    static let p: [UInt8] = [0xed] + Array(repeating: 0xff, count: 30) + [0x7f]
    /// L = 2^252 + 27742317777372353535851937790883648493, little-endian.
    static let l: [UInt8] = Hex.decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")!

    /// Whether little-endian `a` < little-endian `b` (equal lengths).
    static func less(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        for i in stride(from: a.count - 1, through: 0, by: -1) where a[i] != b[i] { return a[i] < b[i] }
        return false
    }

    /// Whether a 32-byte point encoding is canonical and not of small order.
    public static func isAcceptablePoint(_ encoding: [UInt8]) -> Bool {
        guard encoding.count == 32 else { return false }
        var y = encoding
        y[31] &= 0x7f
        guard less(y, p) else { return false }
        if smallOrder.contains(y) { return false }
        // x = 0 only for y = 1 and y = p - 1, both small order and refused above; so the sign bit is free here.
        return true
    }

    /// Whether `raw` is an Ed25519 public key this code accepts: 32 bytes, canonical, not of small order.
    public static func isAcceptableKey(_ raw: [UInt8]) -> Bool { isAcceptablePoint(raw) }

    /// Verifies `signature` (R || S, 64 bytes) over `message` by `publicKey` (32 bytes), refusing every
    /// non-canonical or small-order key, R and S first.
    public static func isValidSignature(_ signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == 64, isAcceptableKey(publicKey), isAcceptablePoint(Array(signature[0..<32])),
            less(Array(signature[32..<64]), l),
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey)
        else { return false }
        return key.isValidSignature(signature, for: message)
    }

    /// `ed25519:<64 hex>`: how a node key is written where a person copies it (`[trust] witnesses`, `status`).
    public static func describe(_ key: [UInt8]) -> String { "ed25519:" + Hex.encode(key) }

    /// Parses `ed25519:<64 lowercase hex>`; nil unless the key is acceptable (see `isAcceptableKey`).
    public static func parse(_ text: String) -> [UInt8]? {
        guard text.hasPrefix("ed25519:") else { return nil }
        let hex = String(text.dropFirst("ed25519:".count))
        guard hex.count == 64, hex == hex.lowercased(), let bytes = Hex.decode(hex), isAcceptableKey(bytes) else {
            return nil
        }
        return bytes
    }
}
