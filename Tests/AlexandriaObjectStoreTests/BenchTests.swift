import AlexandriaCore
import Foundation
import NIOCore
import Testing

@testable import AlexandriaObjectStore

/// Figures for Protocol/store-s3.md, run by hand (Tests/s3-bench/figures.sh): S3_BENCH_FILE names a large local
/// file. It is uploaded as pack objects of S3_BENCH_PACK_MIB (default 128) MiB, one pack after another with
/// `partsInFlight` parts each, then read back with ranged GETs of one part size, `readsInFlight` at once, into a
/// file, and compared. Prints seconds, MiB/s, requests and the process's peak RSS (VmHWM).
@Suite(
    "S3 figures (S3_BENCH_FILE)",
    .enabled(if: Engine.available && ProcessInfo.processInfo.environment["S3_BENCH_FILE"] != nil))
struct BenchTests {
    static func peakRSSKiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    @Test("upload and download a large file as pack objects")
    func figures() async throws {
        let env = ProcessInfo.processInfo.environment
        let path = env["S3_BENCH_FILE"]!
        let bucket = env["S3_BENCH_BUCKET"] ?? "alx-bench"
        let packBytes = UInt64(Int(env["S3_BENCH_PACK_MIB"] ?? "128")!) << 20
        let s3 = try Engine.client()
        try await s3.createBucket(bucket)
        let packs = PackObjects(client: s3, bucket: bucket, layout: try PackObjectLayout(prefix: "bench/"))
        let size = UInt64(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int)
        print("bench: file \(path) \(size) bytes, packs of \(packBytes >> 20) MiB, rss before \(Self.peakRSSKiB()) KiB")

        var uploaded: [(PackObject, Range<UInt64>)] = []
        var t = Self.now()
        var at: UInt64 = 0
        let r0 = s3.requestCount
        while at < size {
            let range = at..<min(size, at + packBytes)
            uploaded.append((try await packs.upload(file: path, range: range), range))
            at = range.upperBound
        }
        let up = Self.now() - t
        let upRequests = s3.requestCount - r0
        let gib = Double(size) / Double(1 << 30)
        print(
            String(
                format: "bench: upload %.2f s %.1f MiB/s requests %d (%.0f per GiB) peak RSS %d KiB", up,
                Double(size) / Double(1 << 20) / up, upRequests, Double(upRequests) / gib, Self.peakRSSKiB()))

        let out = path + ".down"
        let fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0)
        let r1 = s3.requestCount
        t = Self.now()
        let step = UInt64(packs.options.partBytes)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            for (object, range) in uploaded {
                var offset: UInt64 = 0
                while offset < object.size {
                    let piece = offset..<min(object.size, offset + step)
                    let base = range.lowerBound
                    if running >= packs.options.readsInFlight {
                        try await group.next()
                        running -= 1
                    }
                    group.addTask {
                        let bytes = try await packs.read(object.hash, range: piece)
                        bytes.withUnsafeReadableBytes { p in
                            _ = pwrite(fd, p.baseAddress, p.count, off_t(base + piece.lowerBound))
                        }
                    }
                    running += 1
                    offset = piece.upperBound
                }
            }
            try await group.waitForAll()
        }
        let down = Self.now() - t
        close(fd)
        let downRequests = s3.requestCount - r1
        print(
            String(
                format:
                    "bench: download (ranged GETs of %d MiB, %d in flight) %.2f s %.1f MiB/s requests %d (%.0f per GiB) peak RSS %d KiB",
                Int(step >> 20), packs.options.readsInFlight, down, Double(size) / Double(1 << 20) / down,
                downRequests, Double(downRequests) / gib, Self.peakRSSKiB()))

        // Rebuild lower bound: list the packs and stream every byte through its hash check.
        t = Self.now()
        let listed = try await packs.list()
        var scanned: UInt64 = 0
        for object in listed { scanned += try await packs.stream(object.hash) { _ in } }
        let scan = Self.now() - t
        print(
            String(
                format: "bench: list + verified full read of %d packs (%.2f GiB): %.2f s, %.1f MiB/s", listed.count,
                Double(scanned) / Double(1 << 30), scan, Double(scanned) / Double(1 << 20) / scan))
        #expect(listed.count == uploaded.count)
        try await packs.delete(listed.map(\.hash))
    }
}
