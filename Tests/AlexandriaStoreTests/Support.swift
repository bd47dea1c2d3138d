import AlexandriaCore
import Foundation

@testable import AlexandriaStore

/// A fresh store in a temporary directory, removed when the test ends.
final class TemporaryStore {
    let directory: String
    let store: ContentStore

    init(options: StoreOptions = StoreOptions(), in parent: String? = nil) throws {
        let base = parent ?? FileManager.default.temporaryDirectory.path
        directory = base + "/alexandria-test-\(UUID().uuidString)"
        try ContentStore.initialize(at: directory)
        store = try ContentStore(directory: directory, options: options)
    }

    func reopen(options: StoreOptions = StoreOptions()) throws -> ContentStore {
        try ContentStore(directory: directory, options: options)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Writes `bytes` to a new temporary file and returns its path.
    func file(_ bytes: [UInt8], name: String = UUID().uuidString) throws -> String {
        let path = directory + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func packPaths() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory + "/packs")) ?? [])
            .filter { $0.hasSuffix(".pack") }.sorted().map { directory + "/packs/" + $0 }
    }
}

/// Deterministic test data.
enum TestData {
    /// xorshift64* bytes: incompressible, fast to make.
    static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = (seed &+ 1) &* 0x9E37_79B9_7F4A_7C15 | 1
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { p in
            var i = 0
            while i < count {
                state ^= state >> 12
                state ^= state << 25
                state ^= state >> 27
                let v = state &* 2_685_821_657_736_338_717
                withUnsafeBytes(of: v) { w in
                    for j in 0..<min(8, count - i) { p[i + j] = w[j] }
                }
                i += 8
            }
        }
        return out
    }

    /// bf16-like weights: N(0, 0.02) float32 values truncated to their top 16 bits, little-endian.
    static func bf16(_ count: Int, seed: UInt64) -> [UInt8] {
        let uniforms = random(count * 4 + 16, seed: seed)
        var out = [UInt8](repeating: 0, count: count)
        var u = 0
        func next() -> Double {
            let v = uniforms.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: u, as: UInt32.self) }
            u += 4
            return (Double(v) + 1) / 4_294_967_297
        }
        var i = 0
        while i + 1 < count {
            let z = (-2 * log(next())).squareRoot() * cos(2 * Double.pi * next())
            let bits = Float(z * 0.02).bitPattern >> 16
            out[i] = UInt8(truncatingIfNeeded: bits)
            out[i + 1] = UInt8(truncatingIfNeeded: bits >> 8)
            i += 2
        }
        return out
    }
}

func readAll(_ store: ContentStore, _ address: ContentHash, range: Range<UInt64>? = nil) throws -> [UInt8] {
    var out: [UInt8] = []
    try store.read(address, range: range) { out += $0 }
    return out
}

func flipByte(in path: String, at offset: Int) throws {
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: UInt64(offset))
    let byte = try handle.read(upToCount: 1)![0]
    try handle.seek(toOffset: UInt64(offset))
    try handle.write(contentsOf: [byte ^ 0x5a])
}
