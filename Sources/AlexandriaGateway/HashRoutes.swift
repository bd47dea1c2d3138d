import AlexandriaCatalog
import AlexandriaCore
import AlexandriaStore
import NIOHTTP1

/// `GET`/`HEAD /sha256/<hex>`: a stored file's bytes with single ranges; `/sha256/<hex>/recipe`: its chunk list and
/// Merkle root as JSON, so a client that trusts only the hash can check any range itself.
struct HashRoutes: GatewayRoutes {
    let store: ContentStore
    let catalog: Catalog
    let pullThrough: PullThrough?

    func respond(to request: GatewayRequest) async throws -> GatewayResponse? {
        let s = request.target.segments
        guard s.first == "sha256", s.count == 2 || (s.count == 3 && s[2] == "recipe") else { return nil }
        guard let address = ContentHash(hex64: s[1]) else {
            throw GatewayError(.badRequest, "BadHash", "a file is named by 64 lowercase hex digits of its SHA-256")
        }
        guard let recipe = try store.recipe(of: address) else {
            // Not held: a file of a release the catalog knows can be pulled through from its holders.
            if s.count == 2, let pullThrough, let manifestID = try catalog.manifests(containing: address).first,
                let manifest = try catalog.manifest(id: manifestID),
                let file = manifest.manifest.files.first(where: { $0.sha256 == address }),
                let job = await pullThrough.pull(file, of: manifestID)
            {
                return FileResponder.respond(pulling: job, to: request, headers: [:])
            }
            throw GatewayError(.notFound, "HashNotFound", "this node holds no file \(address) and knows no holder")
        }
        if s.count == 3 { return .json(Self.recipeJSON(recipe), headers: FileResponder.immutable(address)) }
        return FileResponder.respond(recipe, to: request, headers: [:])
    }

    /// The recipe document of Protocol/gateway-v1.md.
    static func recipeJSON(_ recipe: FileRecipe) -> GatewayJSON {
        .object([
            "address": .string(recipe.address.description),
            "size": .int(Int64(recipe.size)),
            "chunker": .string(recipe.chunker.description),
            "merkle_root": .string(recipe.merkleRoot.description),
            "chunks": .array(
                recipe.chunks.map {
                    .object([
                        "id": .string($0.id.description), "offset": .int(Int64($0.offset)),
                        "length": .int(Int64($0.length)),
                    ])
                }),
        ])
    }
}

/// Answers a request for a stored file's bytes: validators, conditional requests, single ranges.
enum FileResponder {
    /// `ETag`, `Cache-Control` and `Accept-Ranges` of anything named by a hash: its bytes can never change.
    static func immutable(_ address: ContentHash) -> HTTPHeaders {
        [
            "ETag": "\"sha256:\(address.hex)\"", "Cache-Control": "public, max-age=31536000, immutable",
            "Accept-Ranges": "bytes",
        ]
    }

    static func respond(
        _ recipe: FileRecipe, to request: GatewayRequest, headers extra: HTTPHeaders
    )
        -> GatewayResponse
    {
        respond(recipe.address, size: recipe.size, to: request, headers: extra) { .file(recipe, range: $0) }
    }

    static func respond(
        pulling job: PullJob, to request: GatewayRequest, headers extra: HTTPHeaders
    )
        -> GatewayResponse
    {
        respond(job.file.sha256, size: job.file.size, to: request, headers: extra) { .pull(job, range: $0) }
    }

    static func respond(
        _ address: ContentHash, size: UInt64, to request: GatewayRequest, headers extra: HTTPHeaders,
        body: (Range<UInt64>) -> GatewayResponse.Body
    ) -> GatewayResponse {
        var headers = immutable(address)
        headers.add(contentsOf: extra)
        headers.replaceOrAdd(name: "Content-Type", value: "application/octet-stream")
        let etag = "\"sha256:\(address.hex)\""
        if let inm = request.headers.first(name: "If-None-Match"),
            inm.split(separator: ",").contains(where: { $0.trimmingSpaces == etag || $0.trimmingSpaces == "*" })
        {
            return GatewayResponse(status: .notModified, headers: headers)
        }
        // If-Range with our strong tag keeps the range; anything else (a date, another tag) asks for the whole file.
        let ifRange = request.headers.first(name: "If-Range").map { $0.trimmingSpaces == etag } ?? true
        switch ByteRangeRequest(
            header: request.headers.first(name: "Range"), size: size, ifRangeMatches: ifRange)
        {
        case .whole:
            return GatewayResponse(headers: headers, body: body(0..<size))
        case .partial(let range):
            headers.replaceOrAdd(
                name: "Content-Range", value: "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)")
            return GatewayResponse(status: .partialContent, headers: headers, body: body(range))
        case .unsatisfiable:
            var e = GatewayError(
                .rangeNotSatisfiable, "RangeNotSatisfiable",
                "only one byte range within the \(size) bytes of the file is served")
            e.headers = headers
            e.headers.replaceOrAdd(name: "Content-Range", value: "bytes */\(size)")
            e.headers.remove(name: "Content-Type")
            return e.response
        }
    }
}

extension ContentHash {
    /// Exactly 64 lowercase hex digits (no prefix, no upper case: one spelling per hash in URLs).
    init?(hex64 text: String) {
        guard text.utf8.count == 64, text.utf8.allSatisfy(ReleaseResolver.isHex) else { return nil }
        self.init(canonical: ContentHash.prefix + text)
    }
}
