import AlexandriaCore
import AlexandriaManifest
import Crypto
import NIOHTTP1

/// The subset of the Hugging Face Hub API that `huggingface_hub` uses to read a model repository
/// (`snapshot_download`, `hf_hub_download`, `model_info`, `list_repo_files`, `list_repo_refs`, `hf download`).
/// Repositories are `<publisher>/<name>`; see Protocol/gateway-v1.md for revisions, commit ids and notices.
struct HubRoutes: GatewayRoutes {
    let resolver: ReleaseResolver
    let pullThrough: PullThrough?

    func respond(to request: GatewayRequest) async throws -> GatewayResponse? {
        let s = request.target.segments
        if s.count >= 4, s[0] == "api", s[1] == "models" {
            let (owner, name) = (s[2], s[3])
            switch s.count {
            case 4: return try info(owner, name, revision: "main")
            case 5 where s[4] == "refs": return try refs(owner, name)
            case 6 where s[4] == "revision": return try info(owner, name, revision: s[5])
            case 6... where s[4] == "tree":
                return try tree(owner, name, revision: s[5], under: s[6...].joined(separator: "/"), request: request)
            default: return nil
            }
        }
        if s.count >= 5, s[2] == "resolve", !s[0].isEmpty {
            return try await resolve(
                s[0], s[1], revision: s[3], path: s[4...].joined(separator: "/"), request: request)
        }
        return nil
    }

    /// `X-HF-Warning` headers, which the client prints with `logger.warning` (one per topic), for a release's
    /// notices.
    static func warnings(_ release: GatewayRelease) -> HTTPHeaders {
        var h = HTTPHeaders()
        for (i, line) in release.notices.enumerated() {
            h.add(name: "X-HF-Warning", value: GatewayError.headerSafe("alexandria-\(release.commit)-\(i); \(line)"))
        }
        return h
    }

    func info(_ owner: String, _ name: String, revision: String) throws -> GatewayResponse {
        let release = try resolver.resolve(owner: owner, name: name, revision: revision)
        let m = release.manifest.manifest
        var card: [String: GatewayJSON] = [:]
        if let license = m.license { card["license"] = .string(license) }
        let json = GatewayJSON.object([
            "id": .string("\(owner)/\(name)"), "modelId": .string("\(owner)/\(name)"), "author": .string(owner),
            "sha": .string(release.commit), "private": .bool(false), "gated": .bool(false), "disabled": .bool(false),
            "downloads": .int(0), "likes": .int(0), "tags": .array([.string("alexandria")]),
            "createdAt": .string(m.created), "lastModified": .string(m.created), "cardData": .object(card),
            "siblings": .array(
                m.files.map { f in
                    .object([
                        "rfilename": .string(f.path), "size": .int(Int64(f.size)),
                        "blobId": .string(Self.pointerBlobID(f)),
                        "lfs": .object([
                            "sha256": .string(f.sha256.hex), "size": .int(Int64(f.size)),
                            "pointerSize": .int(Int64(Self.pointer(f).utf8.count)),
                        ]),
                    ])
                }),
            "alexandria": .object([
                "manifest": .string(release.manifest.id.description), "version": .string(m.version),
                "publisher": .string(m.publisher.description), "notices": .array(release.notices.map { .string($0) }),
            ]),
        ])
        return .json(json, headers: Self.warnings(release))
    }

    func refs(_ owner: String, _ name: String) throws -> GatewayResponse {
        guard let log = try resolver.log(owner: owner, name: name) else {
            throw GatewayError(.notFound, "RepoNotFound", "no repository \(owner)/\(name) is known here")
        }
        var branches: [GatewayJSON] = []
        if let main = try? resolver.resolve(owner: owner, name: name, revision: "main") {
            branches.append(.object(["name": "main", "ref": "refs/heads/main", "targetCommit": .string(main.commit)]))
        }
        var tags: [GatewayJSON] = []
        for version in resolver.versions(log, name: name) {
            guard let r = try? resolver.resolve(owner: owner, name: name, revision: version) else { continue }
            tags.append(
                .object([
                    "name": .string(version), "ref": .string("refs/tags/\(version)"), "targetCommit": .string(r.commit),
                ]))
        }
        return .json(.object(["branches": .array(branches), "tags": .array(tags), "converts": .array([])]))
    }

    func tree(
        _ owner: String, _ name: String, revision: String, under: String, request: GatewayRequest
    ) throws
        -> GatewayResponse
    {
        let release = try resolver.resolve(owner: owner, name: name, revision: revision)
        let recursive = ["true", "1", "True"].contains(request.target.query("recursive") ?? "")
        let prefix = under.isEmpty ? "" : under + "/"
        var directories = Set<String>()
        var entries: [GatewayJSON] = []
        for f in release.manifest.manifest.files.sorted(by: { $0.path < $1.path }) where f.path.hasPrefix(prefix) {
            let rest = f.path.dropFirst(prefix.count)
            let parts = rest.split(separator: "/")
            for depth in 1..<parts.count {
                let dir = prefix + parts[0..<depth].joined(separator: "/")
                guard recursive || depth == 1, directories.insert(dir).inserted else { continue }
                let oid = Insecure.SHA1.hash(data: Array("alexandria-tree \(release.manifest.id.hex) \(dir)".utf8))
                entries.append(
                    .object(["type": "directory", "path": .string(dir), "oid": .string(Hex.encode(Array(oid)))]))
            }
            guard recursive || parts.count == 1 else { continue }
            entries.append(
                .object([
                    "type": "file", "path": .string(f.path), "size": .int(Int64(f.size)),
                    "oid": .string(Self.pointerBlobID(f)),
                    "lfs": .object([
                        "oid": .string(f.sha256.hex), "size": .int(Int64(f.size)),
                        "pointerSize": .int(Int64(Self.pointer(f).utf8.count)),
                    ]),
                ]))
        }
        if entries.isEmpty && !under.isEmpty {
            var e = GatewayError(.notFound, "EntryNotFound", "\(under) is not a folder of \(owner)/\(name)")
            e.headers.add(name: "X-Repo-Commit", value: release.commit)
            throw e
        }
        var headers = Self.warnings(release)
        let page = try Self.page(entries.count, request: request)
        if page.upperBound < entries.count {
            // The next page names the commit, not the revision asked for: every page lists the same manifest even
            // if `main` moves between requests.
            var path = "/api/models/\(Self.escape(owner))/\(Self.escape(name))/tree/\(release.commit)"
            for part in under.split(separator: "/") { path += "/" + Self.escape(String(part)) }
            var query = request.target.query.filter { $0.name != "cursor" }
            query.append(("cursor", String(page.upperBound)))
            path += "?" + query.map { "\(Self.escape($0.name))=\(Self.escape($0.value))" }.joined(separator: "&")
            let origin = Self.origin(request).map { "http://\($0)" } ?? ""
            headers.add(name: "Link", value: "<\(origin)\(path)>; rel=\"next\"")
        }
        return .json(.array(Array(entries[page])), headers: headers)
    }

    /// Most entries in one page of a tree listing (the Hub's page size without `expand`); `limit` asks for fewer.
    static let treePageEntries = 1000

    /// The entries of the page a request asks for: from `cursor` (an entry index this gateway wrote into a `Link`
    /// header; opaque to clients), at most `limit` (1...`treePageEntries`) of them.
    static func page(_ count: Int, request: GatewayRequest) throws -> Range<Int> {
        var start = 0
        if let cursor = request.target.query("cursor") {
            guard cursor.utf8.count <= 9, let n = Int(cursor), n > 0, n < count else {
                throw GatewayError(.badRequest, "BadCursor", "the cursor does not name a page of this listing")
            }
            start = n
        }
        var limit = treePageEntries
        if let text = request.target.query("limit") {
            guard text.utf8.count <= 9, let n = Int(text), n >= 1 else {
                throw GatewayError(.badRequest, "BadLimit", "limit must be a whole number from 1")
            }
            limit = min(n, treePageEntries)
        }
        return start..<min(count, start + limit)
    }

    /// The request's `Host`, if it is a plain host name or address with an optional port (it is echoed in `Link`).
    static func origin(_ request: GatewayRequest) -> String? {
        guard let host = request.headers.first(name: "Host"), !host.isEmpty, host.utf8.count <= 255,
            host.utf8.allSatisfy({ c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
                    || c == UInt8(ascii: ".") || c == UInt8(ascii: "-") || c == UInt8(ascii: ":")
                    || c == UInt8(ascii: "[") || c == UInt8(ascii: "]")
            })
        else { return nil }
        return host
    }

    /// Percent-encodes everything but RFC 3986 unreserved characters.
    static func escape(_ text: String) -> String {
        var out = ""
        for c in text.utf8 {
            switch c {
            case 0x30...0x39, 0x41...0x5a, 0x61...0x7a, UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(c))
            default:
                let hex = String(c, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" : "") + hex
            }
        }
        return out
    }

    func resolve(
        _ owner: String, _ name: String, revision: String, path: String, request: GatewayRequest
    )
        async throws -> GatewayResponse
    {
        let release = try resolver.resolve(owner: owner, name: name, revision: revision)
        guard let file = release.manifest.manifest.files.first(where: { $0.path == path }) else {
            var e = GatewayError(.notFound, "EntryNotFound", "\(owner)/\(name)@\(release.commit) has no file \(path)")
            e.headers.add(name: "X-Repo-Commit", value: release.commit)
            throw e
        }
        var headers = Self.warnings(release)
        headers.add(name: "X-Repo-Commit", value: release.commit)
        headers.add(name: "X-Linked-Etag", value: "\"\(file.sha256.hex)\"")
        headers.add(name: "X-Linked-Size", value: "\(file.size)")
        guard let recipe = try resolver.store.recipe(of: file.sha256) else {
            if let pullThrough, let job = await pullThrough.pull(file, of: release.manifest.id) {
                return FileResponder.respond(pulling: job, to: request, headers: headers)
            }
            throw GatewayError(
                .serviceUnavailable, "NotHeld", "this node does not hold \(path) (\(file.sha256)) and found no holder",
                headers: headers)
        }
        return FileResponder.respond(recipe, to: request, headers: headers)
    }

    /// The Git LFS pointer a Git repository would hold for the file.
    static func pointer(_ f: Manifest.File) -> String {
        "version https://git-lfs.github.com/spec/v1\noid sha256:\(f.sha256.hex)\nsize \(f.size)\n"
    }

    /// The Git blob id (SHA-1 of `blob <len>\0<pointer>`) of that pointer: what the Hub reports as a file's `oid`.
    static func pointerBlobID(_ f: Manifest.File) -> String {
        let text = pointer(f)
        let blob = Array("blob \(text.utf8.count)\u{0}\(text)".utf8)
        return Hex.encode(Array(Insecure.SHA1.hash(data: blob)))
    }
}

extension GatewayJSON: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}
