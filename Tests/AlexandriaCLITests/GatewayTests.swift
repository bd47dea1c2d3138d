import AlexandriaCore
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A raw HTTP/1.1 exchange over a loopback socket: what the gateway sent, byte for byte, and whether it closed.
struct RawHTTP {
    let status: Int
    let headers: [String: String]
    let body: [UInt8]

    /// Connects to 127.0.0.1:`port`, sends `request`, reads until the server closes (or `timeout` passes).
    static func exchange(port: Int, _ request: [UInt8], timeout: Double = 10) throws -> RawHTTP {
        let fd = try connectLoopback(port: port)
        defer { close(fd) }
        try sendAll(fd, request)
        let raw = readUntilClosed(fd, timeout: timeout)
        return try parse(raw)
    }

    static func get(
        port: Int, _ path: String, method: String = "GET", headers: [String: String] = [:]
    ) throws
        -> RawHTTP
    {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (k, v) in headers { text += "\(k): \(v)\r\n" }
        return try exchange(port: port, Array((text + "\r\n").utf8))
    }

    static func parse(_ raw: [UInt8]) throws -> RawHTTP {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = raw.indices.first(where: { raw[$0...].starts(with: separator) }) else {
            throw CLIFailure("no complete response head in \(raw.count) bytes")
        }
        let lines = String(decoding: raw[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        return RawHTTP(status: status, headers: headers, body: Array(raw[(end + 4)...]))
    }

    static func connectLoopback(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard r == 0 else {
            close(fd)
            throw CLIFailure("connect to \(port) failed: errno \(errno)")
        }
        return fd
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw CLIFailure("send failed: errno \(errno)") }
            sent += n
        }
    }

    /// Reads until EOF, an error (reset), or the timeout.
    static func readUntilClosed(_ fd: Int32, timeout: Double, limit: Int = 1 << 30) -> [UInt8] {
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline && out.count < limit {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                out += buffer[0..<n]
            } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) {
                break
            }
        }
        return out
    }

    /// Whether the server closed `fd` within `seconds` (EOF or reset), reading and dropping anything it sent.
    static func closedWithin(_ fd: Int32, seconds: Double) -> Bool {
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { return true }
        }
        return false
    }
}

struct CLIFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A published release in a fresh home, served by a node with the HTTP gateway on.
final class GatewayFixture {
    let cli = CLI()
    var node: NodeProcess!
    let httpPort = freeLoopbackPort()
    let publisher: String
    let manifestID: String
    let files: [String: [UInt8]]

    init(config: String = "", files: [String: [UInt8]], extra: [String] = []) throws {
        _ = try cli.run("init")
        if !config.isEmpty {
            let path = cli.home + "/config.toml"
            let text = try String(contentsOfFile: path, encoding: .utf8) + "\n" + config + "\n"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        #expect(try cli.run("keys", "generate", "acme").status == 0)
        for (name, bytes) in files { _ = try cli.write(bytes, to: "rel/" + name) }
        let r = try cli.run("publish", cli.home + "-data/rel", "--name", "tiny", "--version", "1.0", "--json")
        guard r.status == 0, let json = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any],
            let release = json["release"] as? String, let id = json["manifestID"] as? String
        else { throw CLIFailure("publish failed: \(r.stderr)") }
        publisher = String(release.split(separator: "/")[0])
        manifestID = id
        self.files = files
        node = try NodeProcess(cli: cli, extra: ["--http", "127.0.0.1:\(httpPort)"] + extra)
        try Self.waitForHTTP(port: httpPort)
    }

    /// Waits until something accepts connections on the port (the gateway binds after the peer server logs).
    static func waitForHTTP(port: Int) throws {
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if let fd = try? RawHTTP.connectLoopback(port: port) {
                close(fd)
                return
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw CLIFailure("nothing listens on \(port)")
    }

    func stop() {
        node?.stop()
        cli.cleanUp()
        try? FileManager.default.removeItem(atPath: cli.home + "-data")
    }
}

@Suite("The HTTP gateway of a node, over real sockets", .serialized, .offThePool)
struct GatewayTests {
    static let data = randomBytes(3 << 20, seed: 12)

    @Test func byHashWithRangesValidatorsAndRecipe() throws {
        let g = try GatewayFixture(files: ["model.bin": Self.data, "config.json": Array("{\"a\":1}".utf8)])
        defer { g.stop() }
        let hex = ContentHash.of(Self.data).hex
        let path = "/sha256/\(hex)"
        let whole = try RawHTTP.get(port: g.httpPort, path)
        #expect(whole.status == 200)
        #expect(whole.body == Self.data)
        #expect(whole.headers["etag"] == "\"sha256:\(hex)\"")
        #expect(whole.headers["cache-control"] == "public, max-age=31536000, immutable")
        #expect(whole.headers["accept-ranges"] == "bytes")
        let head = try RawHTTP.get(port: g.httpPort, path, method: "HEAD")
        #expect(head.status == 200 && head.body.isEmpty && head.headers["content-length"] == "\(Self.data.count)")
        let size = Self.data.count
        for (range, expected) in [
            ("bytes=10-19", 10..<20), ("bytes=\(size - 5)-", (size - 5)..<size), ("bytes=-7", (size - 7)..<size),
            ("bytes=0-99999999999", 0..<size), ("bytes=262140-1048580", 262140..<1_048_581),
        ] {
            let r = try RawHTTP.get(port: g.httpPort, path, headers: ["Range": range])
            #expect(r.status == 206, "\(range)")
            #expect(r.body == Array(Self.data[expected]), "\(range)")
            #expect(r.headers["content-range"] == "bytes \(expected.lowerBound)-\(expected.upperBound - 1)/\(size)")
        }
        for bad in ["bytes=\(size)-", "bytes=0-1,4-5", "bytes=5-1", "bytes=x-y", "bytes=-0"] {
            let r = try RawHTTP.get(port: g.httpPort, path, headers: ["Range": bad])
            #expect(r.status == 416, "\(bad)")
            #expect(r.headers["content-range"] == "bytes */\(size)", "\(bad)")
        }
        // If-Range naming something else: the whole file, never the range of another representation.
        let stale = try RawHTTP.get(port: g.httpPort, path, headers: ["Range": "bytes=0-1", "If-Range": "\"other\""])
        #expect(stale.status == 200 && stale.body == Self.data)
        let fresh = try RawHTTP.get(
            port: g.httpPort, path, headers: ["Range": "bytes=0-1", "If-Range": "\"sha256:\(hex)\""])
        #expect(fresh.status == 206 && fresh.body == Array(Self.data[0..<2]))
        let cached = try RawHTTP.get(port: g.httpPort, path, headers: ["If-None-Match": "\"sha256:\(hex)\""])
        #expect(cached.status == 304 && cached.body.isEmpty)
        // The recipe lets a client that trusts only the hash check every chunk and the Merkle root.
        let recipe = try RawHTTP.get(port: g.httpPort, path + "/recipe")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(recipe.body)) as? [String: Any])
        let chunks = try #require(json["chunks"] as? [[String: Any]])
        var refs: [ChunkRef] = []
        var offset = 0
        for c in chunks {
            let o = c["offset"] as! Int
            let l = c["length"] as! Int
            #expect(o == offset)
            let id = try #require(ContentHash(canonical: c["id"] as! String))
            #expect(ContentHash.of(Self.data[o..<o + l]) == id)
            refs.append(ChunkRef(id: id, offset: UInt64(o), length: UInt32(l)))
            offset += l
        }
        #expect(offset == size && json["size"] as? Int == size)
        #expect(json["merkle_root"] as? String == MerkleTree.root(refs.map(\.leafHash)).description)
    }

    @Test func badInputGetsTheRightCodeAndNeverWrongBytes() throws {
        let g = try GatewayFixture(
            config: "[gateway]\nheader_timeout = 1\nmax_connections = 8",
            files: ["model.bin": Self.data, "sub/x.txt": Array("hi\n".utf8)])
        defer { g.stop() }
        let repo = "/\(g.publisher)/tiny"
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let r = try RawHTTP.get(port: g.httpPort, repo + "/resolve/main/model.bin", method: method)
            #expect(r.status == 405 && r.headers["allow"] == "GET, HEAD", "\(method)")
        }
        for path in [
            repo + "/resolve/main/../../etc/passwd", repo + "/resolve/main/%2e%2e/%2e%2e/etc/passwd",
            repo + "/resolve/main/sub%2fx.txt", repo + "/resolve/main/sub%2Fx.txt", repo + "/resolve/main/x%00.txt",
            repo + "/resolve/main/sub/%2E%2E/model.bin", "/sha256/%2e%2e", repo + "/resolve/main/a%5cb",
        ] {
            let r = try RawHTTP.get(port: g.httpPort, path)
            #expect(r.status == 400, "\(path)")
        }
        let ok = try RawHTTP.get(port: g.httpPort, repo + "/resolve/main/sub/x.txt")
        #expect(ok.status == 200 && ok.body == Array("hi\n".utf8))
        let cases: [(String, Int, String)] = [
            ("/sha256/" + String(repeating: "ab", count: 32), 404, "HashNotFound"),
            ("/sha256/ABCD", 400, "BadHash"),
            ("/\(String(repeating: "0", count: 64))/tiny/resolve/main/model.bin", 404, "RepoNotFound"),
            ("/\(g.publisher)/other/resolve/main/model.bin", 404, "RepoNotFound"),
            (repo + "/resolve/9.9/model.bin", 404, "RevisionNotFound"),
            (repo + "/resolve/main/nope.bin", 404, "EntryNotFound"),
            ("/api/models/\(g.publisher)/tiny/revision/9.9", 404, "RevisionNotFound"),
            ("/nothing/here", 404, "NotFound"),
        ]
        for (path, status, code) in cases {
            let r = try RawHTTP.get(port: g.httpPort, path)
            #expect(r.status == status && r.headers["x-error-code"] == code, "\(path): \(r.status) \(r.headers)")
        }
        // Oversized request targets and headers.
        let longURI = try RawHTTP.get(port: g.httpPort, "/sha256/" + String(repeating: "a", count: 9000))
        #expect(longURI.status == 414)
        let hugeURI = try RawHTTP.get(port: g.httpPort, "/" + String(repeating: "a", count: 100_000))
        #expect(hugeURI.status == 414)
        let bigHeader = try RawHTTP.get(
            port: g.httpPort, repo + "/resolve/main/model.bin", headers: ["X-Big": String(repeating: "b", count: 20000)]
        )
        #expect(bigHeader.status == 431)
        let garbage = try RawHTTP.exchange(port: g.httpPort, Array("NOT HTTP AT ALL\r\n\r\n".utf8))
        #expect(garbage.status == 400)
        // Slowloris: a head that never completes is cut off after the header timeout.
        let slow = try RawHTTP.connectLoopback(port: g.httpPort)
        try RawHTTP.sendAll(slow, Array("GET /sha256/\(ContentHash.of(Self.data).hex) HTTP/1.1\r\nHost: x\r\n".utf8))
        let started = Date()
        #expect(RawHTTP.closedWithin(slow, seconds: 5))
        #expect(Date().timeIntervalSince(started) >= 0.5)
        close(slow)
        // A connection cap: idle connections beyond it are answered 503.
        var held: [Int32] = []
        for _ in 0..<8 { held.append(try RawHTTP.connectLoopback(port: g.httpPort)) }
        Thread.sleep(forTimeInterval: 0.2)
        let refused = try RawHTTP.get(port: g.httpPort, "/sha256/\(ContentHash.of(Self.data).hex)")
        #expect(refused.status == 503 && refused.headers["retry-after"] == "1")
        held.forEach { close($0) }
    }

    @Test func aDamagedChunkCutsTheResponseOff() throws {
        let g = try GatewayFixture(files: ["model.bin": Self.data])
        defer { g.stop() }
        // Flip one byte in the middle of the pack: the chunk holding it no longer hashes to its id.
        let packs = g.cli.home + "/store/packs"
        let pack = packs + "/" + (try FileManager.default.contentsOfDirectory(atPath: packs).sorted().first!)
        let handle = try #require(FileHandle(forUpdatingAtPath: pack))
        let size = try handle.seekToEnd()
        try handle.seek(toOffset: size / 2)
        let byte = try #require(try handle.read(upToCount: 1))
        try handle.seek(toOffset: size / 2)
        try handle.write(contentsOf: Data([byte[0] ^ 0xff]))
        try handle.close()
        let r = try RawHTTP.get(port: g.httpPort, "/sha256/\(ContentHash.of(Self.data).hex)")
        #expect(r.status == 200)
        #expect(r.body.count < Self.data.count, "a damaged file must never be served complete")
        #expect(r.body == Array(Self.data[0..<r.body.count]), "what was sent is a verified prefix")
    }

    /// A response sent with `Connection: close` arrives whole: the connection is not closed while the end of the
    /// body is still in the node's write buffer (skopeo, which sends `Connection: close`, saw short reads about one
    /// time in two before this was fixed).
    @Test func aConnectionCloseResponseArrivesWhole() throws {
        let big = randomBytes(16 << 20, seed: 6)
        let g = try GatewayFixture(files: ["big.bin": big])
        defer { g.stop() }
        let request = "GET /sha256/\(ContentHash.of(big).hex) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        var short: [Int] = []
        for _ in 0..<4 {
            // A reader slower than the node (a small receive buffer, 64 KiB every 2 ms), so the end of the body
            // is still in the node's write buffer when it has handed the last segment over.
            let fd = try RawHTTP.connectLoopback(port: g.httpPort)
            defer { close(fd) }
            var small: Int32 = 64 << 10
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            try RawHTTP.sendAll(fd, Array(request.utf8))
            var raw: [UInt8] = []
            while true {
                let part = RawHTTP.readUntilClosed(fd, timeout: 30, limit: 64 << 10)
                if part.isEmpty { break }
                raw += part
                usleep(2000)
            }
            let reply = try RawHTTP.parse(raw)
            if reply.body.count != big.count || ContentHash.of(reply.body) != ContentHash.of(big) {
                short.append(reply.body.count)
            }
        }
        #expect(short.isEmpty, "responses cut short at \(short) of \(big.count) bytes")
    }

    @Test func aSlowReaderKeepsMemoryFlat() throws {
        let big = randomBytes(64 << 20, seed: 5)
        let g = try GatewayFixture(files: ["big.bin": big])
        defer { g.stop() }
        func rss() -> Int {
            let status =
                (try? String(contentsOfFile: "/proc/\(g.node.process.processIdentifier)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        let fd = try RawHTTP.connectLoopback(port: g.httpPort)
        defer { close(fd) }
        let before = rss()
        try RawHTTP.sendAll(
            fd, Array("GET /sha256/\(ContentHash.of(big).hex) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        Thread.sleep(forTimeInterval: 2)
        let stalled = rss()
        #expect(stalled - before < 24 << 10, "RSS grew by \(stalled - before) KiB while the client did not read")
        let raw = RawHTTP.readUntilClosed(fd, timeout: 60)
        let reply = try RawHTTP.parse(raw)
        #expect(reply.body.count == big.count && ContentHash.of(reply.body) == ContentHash.of(big))
    }

    /// A node that holds nothing pulls a file through from the two holders it knows: chunks come from both (each
    /// holder's `/metrics` counts what it sent), are verified, and reach the client in order, whole.
    @Test func pullThroughFromTwoHoldersToANodeThatHeldNothing() throws {
        let big = randomBytes(32 << 20, seed: 9)
        let hex = ContentHash.of(big).hex
        let g = try GatewayFixture(files: ["big.bin": big])
        defer { g.stop() }
        // A second holder: a home that fetched the file by hash from the first.
        let second = CLI()
        _ = try second.run("init")
        let copy = second.home + "-big.bin"
        let fetched = try second.run("fetch", "sha256:\(hex)", "-o", copy, "--peer", g.node.address)
        #expect(fetched.status == 0, "\(fetched.stderr)")
        let secondHTTP = freeLoopbackPort()
        let holder = try NodeProcess(cli: second, extra: ["--no-mirror", "--http", "127.0.0.1:\(secondHTTP)"])
        try GatewayFixture.waitForHTTP(port: secondHTTP)
        defer {
            holder.stop()
            second.cleanUp()
            unlink(copy)
        }
        let sentBefore = try Self.sentToPeers(port: g.httpPort)
        let empty = CLI()
        _ = try empty.run("init")
        let httpPort = freeLoopbackPort()
        let mirror = try NodeProcess(
            cli: empty,
            extra: [
                "--peer", g.node.address, "--peer", holder.address, "--no-mirror", "--http", "127.0.0.1:\(httpPort)",
            ])
        try GatewayFixture.waitForHTTP(port: httpPort)
        defer {
            mirror.stop()
            empty.cleanUp()
        }
        let path = "/\(g.publisher)/tiny/resolve/1.0/big.bin"
        var reply: RawHTTP?
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            // Until gossip has brought the release's manifest, the repository is unknown here.
            reply = try RawHTTP.get(port: httpPort, path)
            if reply?.status == 200 { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(reply?.status == 200)
        #expect(reply.map { ContentHash.of($0.body) } == ContentHash.of(big))
        // Both holders sent part of it.
        let fromFirst = try Self.sentToPeers(port: g.httpPort) - sentBefore
        let fromSecond = try Self.sentToPeers(port: secondHTTP)
        #expect(fromFirst > 0 && fromSecond > 0, "first holder sent \(fromFirst) bytes, second \(fromSecond)")
        #expect(fromFirst + fromSecond >= big.count)
        // The node kept it: it now serves the recipe from its own store.
        Thread.sleep(forTimeInterval: 0.5)
        let recipe = try RawHTTP.get(port: httpPort, "/sha256/\(hex)/recipe")
        #expect(recipe.status == 200)
    }

    /// Chunk payload bytes a node has sent to peers, from its `/metrics`.
    static func sentToPeers(port: Int) throws -> Int {
        let text = String(decoding: try RawHTTP.get(port: port, "/metrics").body, as: UTF8.self)
        let prefix = "alexandria_served_bytes_total{via=\"peer\"} "
        let line = text.split(separator: "\n").first { $0.hasPrefix(prefix) }
        return line.flatMap { Double($0.dropFirst(prefix.count)) }.map { Int($0) } ?? 0
    }

    @Test func fiveHundredConnectionsMeetTheCapAndTheNodeServesAfter() throws {
        let small = Array("{\"a\":1}".utf8)
        let g = try GatewayFixture(
            config: "[gateway]\nheader_timeout = 60", files: ["model.bin": Self.data, "config.json": small])
        defer { g.stop() }
        // 500 connections at once against the default cap of 256: those beyond it are answered 503 and closed at
        // once; those within it wait for their request and are served.
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        for _ in 0..<500 { fds.append(try RawHTTP.connectLoopback(port: g.httpPort)) }
        var refused = Set<Int>()
        let deadline = Date().addingTimeInterval(30)
        while refused.count < 500 - 256 && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
            for (i, fd) in fds.enumerated() where !refused.contains(i) {
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                guard n > 0 else { continue }
                let reply = try RawHTTP.parse(Array(buffer[0..<n]))
                #expect(reply.status == 503 && reply.headers["retry-after"] == "1")
                refused.insert(i)
            }
        }
        #expect(refused.count == 500 - 256, "\(refused.count) connections were refused")
        var served = 0
        let request = Array(
            "GET /sha256/\(ContentHash.of(small).hex) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
        for (i, fd) in fds.enumerated() where !refused.contains(i) { try RawHTTP.sendAll(fd, request) }
        for (i, fd) in fds.enumerated() where !refused.contains(i) {
            if let reply = try? RawHTTP.parse(RawHTTP.readUntilClosed(fd, timeout: 10)), reply.status == 200,
                reply.body == small
            {
                served += 1
            }
        }
        #expect(served == 256)
        fds.forEach { close($0) }
        fds = []
        // Healthy after: the slots are free again and a whole file is served.
        Thread.sleep(forTimeInterval: 0.3)
        for _ in 0..<3 {
            let r = try RawHTTP.get(port: g.httpPort, "/sha256/\(ContentHash.of(Self.data).hex)")
            #expect(r.status == 200 && r.body == Self.data)
        }
    }

    @Test func aChunkThatFailsMidResponseIsRefetchedFromAPeer() throws {
        let big = randomBytes(6 << 20, seed: 31)
        let g = try GatewayFixture(files: ["big.bin": big])
        defer { g.stop() }
        let empty = CLI()
        _ = try empty.run("init")
        let httpPort = Int.random(in: 20_000...60_000)
        let mirror = try NodeProcess(
            cli: empty, extra: ["--peer", g.node.address, "--no-mirror", "--http", "127.0.0.1:\(httpPort)"])
        try GatewayFixture.waitForHTTP(port: httpPort)
        defer {
            mirror.stop()
            empty.cleanUp()
        }
        let hex = ContentHash.of(big).hex
        let path = "/\(g.publisher)/tiny/resolve/1.0/big.bin"
        var reply: RawHTTP?
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            reply = try RawHTTP.get(port: httpPort, path)
            if reply?.status == 200 { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(reply.map { ContentHash.of($0.body) } == ContentHash.of(big))
        // The mirror now holds the file (pulled through). Damage one of its chunks on disk, past the first segment.
        Thread.sleep(forTimeInterval: 0.5)
        let packs = empty.home + "/store/packs"
        let pack = try FileManager.default.contentsOfDirectory(atPath: packs).map { packs + "/" + $0 }
            .max {
                (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int ?? 0) ?? 0
                    < (try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int ?? 0) ?? 0
            }!
        let handle = try #require(FileHandle(forUpdatingAtPath: pack))
        let size = try handle.seekToEnd()
        try handle.seek(toOffset: size * 3 / 4)
        let byte = try #require(try handle.read(upToCount: 1))
        try handle.seek(toOffset: size * 3 / 4)
        try handle.write(contentsOf: Data([byte[0] ^ 0xff]))
        try handle.close()
        // The response is cut off: a verified prefix, never completed with wrong bytes.
        let cut = try RawHTTP.get(port: httpPort, "/sha256/\(hex)")
        #expect(cut.status == 200 && cut.body.count < big.count)
        #expect(cut.body == Array(big[0..<cut.body.count]))
        // The node fetches the damaged chunk again from its peer; a later request is served whole.
        var whole = false
        let repaired = Date().addingTimeInterval(20)
        while Date() < repaired && !whole {
            Thread.sleep(forTimeInterval: 0.3)
            let r = try RawHTTP.get(port: httpPort, "/sha256/\(hex)")
            whole = r.status == 200 && r.body.count == big.count && ContentHash.of(r.body) == ContentHash.of(big)
        }
        #expect(whole, "the damaged chunk was not repaired from the peer")
    }

    @Test func treeListingsArePagedWithLinkHeaders() throws {
        var files: [String: [UInt8]] = [:]
        for i in 0..<23 { files["f\(i < 10 ? "0" : "")\(i).txt"] = Array("file \(i)\n".utf8) }
        for i in 0..<4 { files["sub/s\(i).txt"] = Array("sub \(i)\n".utf8) }
        let g = try GatewayFixture(files: files)
        defer { g.stop() }
        let repo = "/api/models/\(g.publisher)/tiny"
        let all = try RawHTTP.get(port: g.httpPort, repo + "/tree/main?recursive=true")
        #expect(all.status == 200 && all.headers["link"] == nil)
        let every = try #require(try JSONSerialization.jsonObject(with: Data(all.body)) as? [[String: Any]])
        #expect(every.count == 23 + 4 + 1)
        // Pages of 5: each names the next by the commit (never `main`, which could move) and an opaque cursor.
        var paths: [String] = []
        var next: String? = repo + "/tree/main?recursive=true&limit=5"
        var pages = 0
        while let target = next, pages < 20 {
            let r = try RawHTTP.get(port: g.httpPort, target)
            #expect(r.status == 200)
            let page = try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]])
            #expect(page.count <= 5)
            paths += page.map { $0["path"] as! String }
            pages += 1
            next = nil
            if let link = r.headers["link"] {
                #expect(link.hasPrefix("<http://127.0.0.1/api/models/") && link.hasSuffix(">; rel=\"next\""))
                #expect(link.contains("/tree/\(g.manifestID.split(separator: ":").last!.prefix(40))?"))
                let url = link.dropFirst(1).prefix { $0 != ">" }
                next = String(url.dropFirst("http://127.0.0.1".count))
            }
        }
        #expect(pages == 6)
        #expect(paths == every.map { $0["path"] as! String })
        for bad in ["cursor=x", "cursor=0", "cursor=999", "limit=0", "limit=-3"] {
            let r = try RawHTTP.get(port: g.httpPort, repo + "/tree/main?recursive=true&" + bad)
            #expect(r.status == 400, "\(bad)")
        }
    }
}
