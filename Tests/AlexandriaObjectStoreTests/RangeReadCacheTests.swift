import AlexandriaCore
import Dispatch
import Foundation
import NIOCore
import Testing

@testable import AlexandriaObjectStore

@Suite("Read-ahead policy for ranged reads")
struct ReadAheadPolicyTests {
    let policy = ReadAheadPolicy()
    let mib = 1 << 20

    @Test("a lone read fetches one small window, or what it asked for, never past the object or the next window")
    func demand() {
        #expect(policy.demandWindow(at: 0, want: 300_000, objectSize: 64 * mib, windows: []) == 0..<mib)
        #expect(policy.demandWindow(at: 5, want: 3 * mib, objectSize: 64 * mib, windows: []) == 5..<5 + 3 * mib)
        #expect(policy.demandWindow(at: 0, want: 40 * mib, objectSize: 64 * mib, windows: []) == 0..<16 * mib)
        #expect(policy.demandWindow(at: 100, want: 10, objectSize: 1000, windows: []) == 100..<1000)
        #expect(policy.demandWindow(at: 0, want: 10, objectSize: 64 * mib, windows: [4096..<mib]) == 0..<4096)
        // Reading on from a window that ends here (its successor was evicted or never fetched): twice its size.
        #expect(
            policy.demandWindow(at: 4 * mib, want: 10, objectSize: 64 * mib, windows: [0..<4 * mib])
                == 4 * mib..<12 * mib)
    }

    @Test("reading on into a window fetches the next ones, doubling up to the largest, within the budget")
    func ahead() {
        let first = 0..<mib
        #expect(
            policy.aheadWindows(of: first, objectSize: 64 * mib, windows: [first], budget: 4)
                == [mib..<3 * mib, 3 * mib..<7 * mib, 7 * mib..<15 * mib])
        #expect(policy.aheadWindows(of: first, objectSize: 64 * mib, windows: [first], budget: 1) == [mib..<3 * mib])
        #expect(policy.aheadWindows(of: first, objectSize: 64 * mib, windows: [first], budget: 0).isEmpty)
        // Windows already there are skipped over (not fetched twice); the look-ahead counts them.
        #expect(
            policy.aheadWindows(of: first, objectSize: 64 * mib, windows: [first, mib..<3 * mib], budget: 4)
                == [3 * mib..<7 * mib, 7 * mib..<15 * mib])
        #expect(
            policy.aheadWindows(
                of: 16 * mib..<32 * mib, objectSize: 40 * mib, windows: [16 * mib..<32 * mib], budget: 4)
                == [32 * mib..<40 * mib])
        #expect(policy.aheadWindows(of: 0..<100, objectSize: 100, windows: [0..<100], budget: 4).isEmpty)
        // Never overlapping a window further on.
        #expect(
            policy.aheadWindows(of: first, objectSize: 64 * mib, windows: [first, 2 * mib..<3 * mib], budget: 4)
                == [mib..<2 * mib, 3 * mib..<5 * mib])
    }
}

@Suite("Coalesced, read-ahead ranged reads against a real engine (S3_ENDPOINT)", .enabled(if: Engine.available))
struct RangeReadCacheEngineTests {
    /// Runs the cache's blocking reads on a Dispatch thread, off Swift's cooperative pool (as the store does).
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in
            DispatchQueue.global().async { c.resume(with: Result { try body() }) }
        }
    }

    static func cache(_ packs: PackObjects, policy: ReadAheadPolicy = ReadAheadPolicy()) -> RangeReadCache {
        RangeReadCache(
            policy: policy,
            fetch: { object, range in
                try await packs.read(object, range: UInt64(range.lowerBound)..<UInt64(range.upperBound))
            },
            wait: { body in
                let done = DispatchSemaphore(value: 0)
                let box = Box()
                Task.detached {
                    do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
                    done.signal()
                }
                done.wait()
                return try box.result!.get()
            },
            spawn: { body in Task.detached { await body() } })
    }

    final class Box: @unchecked Sendable {
        var result: Result<ByteBuffer, any Error>?
    }

    @Test("a pack read record by record costs a GET per window, not per record; every byte is the object's")
    func sequentialAndRandom() async throws {
        let s3 = try Engine.client()
        let bucket = try await Engine.bucket(s3)
        let packs = PackObjects(client: s3, bucket: bucket, layout: try PackObjectLayout(prefix: "c/"))
        let size = 40 << 20
        let bytes = Array(Engine.bytes(size, seed: 31).readableBytesView)
        let path = NSTemporaryDirectory() + "alx-cache-\(UInt64.random(in: 0..<UInt64.max)).bin"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        do {
            let object = try await packs.upload(file: path)
            let cache = Self.cache(packs)
            // Records of 200 to 400 KiB, read in order (as a file's chunks are laid out in its pack).
            var records: [Range<Int>] = []
            var at = 0
            var seed: UInt64 = 7
            while at < size {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1
                let n = min(size - at, 200_000 + Int(seed >> 40) % 200_000)
                records.append(at..<at + n)
                at += n
            }
            let before = s3.requestCount
            let inOrder = records
            let ok = try await Self.offPool {
                var good = true
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
                defer { buffer.deallocate() }
                for r in inOrder {
                    let n = try cache.read(object: object.hash, objectSize: size, range: r, into: buffer)
                    good = good && n == r.count && Array(buffer[0..<n]) == Array(bytes[r])
                }
                return good
            }
            let requests = s3.requestCount - before
            #expect(ok)
            // 1 + 2 + 4 + 8 + 16 MiB then the rest: about 6 GETs for 40 MiB (one per record would be ~135).
            #expect(requests <= 8, "\(requests) requests for \(records.count) records")
            #expect(cache.heldBytes <= cache.policy.cacheBytes)

            // Random reads from two threads at once, some across window edges and past the end of the object.
            let fresh = Self.cache(packs)
            let good = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        try await Self.offPool {
                            var good = true
                            var rng = SystemRandomNumberGenerator()
                            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 3 << 20, alignment: 64)
                            defer { buffer.deallocate() }
                            for i in 0..<40 {
                                let from = i % 5 == 0 ? size - 1000 : Int.random(in: 0..<size, using: &rng)
                                let want = Int.random(in: 1...(3 << 20), using: &rng)
                                let n = try fresh.read(
                                    object: object.hash, objectSize: size, range: from..<from + want, into: buffer)
                                let expected = Array(bytes[from..<min(size, from + want)])
                                good = good && n == expected.count && Array(buffer[0..<n]) == expected
                            }
                            return good
                        }
                    }
                }
                var all = true
                for try await g in group { all = all && g }
                return all
            }
            #expect(good)

            // A missing object is an error for the reader, not bytes.
            await #expect(throws: ObjectStoreError.self) {
                try await Self.offPool {
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 100, alignment: 64)
                    defer { buffer.deallocate() }
                    _ = try fresh.read(object: ContentHash.of([1]), objectSize: 1000, range: 0..<100, into: buffer)
                }
            }
        } catch {
            await Engine.cleanup(s3, bucket)
            throw error
        }
        await Engine.cleanup(s3, bucket)
    }
}
