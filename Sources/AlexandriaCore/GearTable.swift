import Crypto

/// The 256-entry gear table of the content-defined chunker (Protocol/chunking-and-hashing.md, "Gear table").
///
/// Entry `i` is the first 8 bytes, read big-endian, of `SHA-256("alexandria/gear/v1" || byte(i))`. Deriving it
/// from a hash makes the table reproducible in any language from one line of spec; the test vectors list all
/// 256 values so an implementation can check its copy.
public enum GearTable {
    public static let seed = "alexandria/gear/v1"

    public static let values: [UInt64] = (0..<256).map { i in
        var input = Array(seed.utf8)
        input.append(UInt8(i))
        let digest = SHA256.hash(data: input)
        return digest.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)) }
    }
}
