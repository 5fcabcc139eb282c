// Types of the GRASP Guard JavaScript SDK (hand-written; the code is plain ES modules).

// ---------------------------------------------------------------- errors

/** Base of every error the SDK throws on purpose. */
export class GraspSDKError extends Error {}

/** The protection service answered with an error it means (a 4xx/5xx JSON error body). */
export class ServiceError extends GraspSDKError {
  constructor(kind: string, message: string, status: number);
  /** The service's machine-readable error kind (`invalid_image`, `unauthorized`, ...). */
  readonly kind: string;
  /** The service's human-readable message. */
  readonly serviceMessage: string;
  /** The HTTP status of the answer. */
  readonly status: number;
}

/** No endpoint could take the image: unreachable or overloaded (429/502/503) after retries. */
export class ServiceUnavailable extends GraspSDKError {}

/** The protection did not finish within the client's total time budget. */
export class ProtectTimeout extends GraspSDKError {}

/** A compiled policy is invalid; the message names the source, the site and the field. */
export class PolicyError extends GraspSDKError {
  readonly source: string;
  readonly site: string | null;
  readonly field: string | null;
}

/** An image in a matched upload could not be protected; the caller applies `onFailure`. */
export class RewriteError extends GraspSDKError {
  readonly site: string;
  readonly onFailure: OnFailure;
}

/**
 * On a `block` site, a matched upload carries an image the hook cannot rewrite (signed, too
 * big, malformed, a piece of a split upload, a format the policy leaves out).
 */
export class UnprotectableUpload extends RewriteError {}

/**
 * The upload was refused: protection failed and the `on_failure` in force is `block`.
 * `cause` says what failed.
 */
export class UploadBlockedError extends GraspSDKError {
  constructor(site: string | null, cause: unknown);
  readonly site: string | null;
}

// ---------------------------------------------------------------- options and results

export type Preset = "fast" | "balanced" | "strong";
export type SizeMode = "any" | "max" | "exact";
export type OnNoFace = "skip" | "whole";
export type OnFailure = "pass" | "block";
export type WireFormat = "multipart" | "raw" | "json_base64" | "form_base64";

export interface ProtectOptionsInit {
  /** Optimisation budget (default `balanced`). */
  preset?: Preset;
  /** `any` size, `max` (never larger than the input), `exact` (same byte length). */
  sizeMode?: SizeMode;
  /** `skip`: a photo without a face comes back byte-identical; `whole`: protect it all. */
  onNoFace?: OnNoFace;
  /** A policy site whose re-encoding the protection must survive (sent as `site`). */
  site?: string | null;
  siteJpegQuality?: number | null;
  siteMaxSide?: number | null;
  siteBlurSigma?: number | null;
}

/** How one image is protected; validated on construction (RangeError), frozen. */
export class ProtectOptions implements Required<ProtectOptionsInit> {
  constructor(values?: ProtectOptionsInit);
  readonly preset: Preset;
  readonly sizeMode: SizeMode;
  readonly onNoFace: OnNoFace;
  readonly site: string | null;
  readonly siteJpegQuality: number | null;
  readonly siteMaxSide: number | null;
  readonly siteBlurSigma: number | null;
  /** The query parameters sent to the service: the options that differ from the defaults. */
  toParams(): Record<string, string>;
}

/** One protected image, as the service returned it. */
export interface ProtectResult {
  /** The image bytes; identical to the input when nothing was protected. */
  data: Uint8Array;
  /** Its media type (the input's). */
  contentType: string;
  /** The service's report (`X-Grasp-Report`), at least `{protected, faces}`. */
  report: { protected?: boolean; faces?: number; reason?: string; [key: string]: unknown };
}

/**
 * Protects one image: `client.protect`, or a stand-in (an extension's page script passes
 * one that asks its background worker, so that pages never reach the service).
 */
export type ProtectFn = (data: Uint8Array, options: ProtectOptions) => Promise<ProtectResult>;

// ---------------------------------------------------------------- the service client

export interface GraspClientOptions {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string | null;
  /** The fetch to use (default: the global one). Never a fetch wrapped by `wrapFetch`. */
  fetch?: typeof fetch;
  /** One `protect` call, retries and waits included (default 120 000). */
  totalTimeoutMs?: number;
  /** Rounds over all endpoints after the first, when all refused (default 4). */
  maxRetries?: number;
  /** The first backoff; doubles each round, with full jitter (default 250). */
  backoffBaseMs?: number;
  /** The longest backoff between rounds (default 10 000). */
  backoffMaxMs?: number;
  /** The longest Retry-After honoured (default 30 000). */
  maxRetryAfterMs?: number;
}

/**
 * Client of one or more protection service endpoints (`POST /v1/protect`). Endpoints are
 * tried in turn when one is unreachable or answers 429/502/503; then it backs off (or
 * waits as Retry-After says) and goes round again within the time budget. 504 and other
 * errors are not retried.
 */
export class GraspClient {
  constructor(endpoints: string | string[], options?: GraspClientOptions);
  readonly endpoints: readonly string[];
  /**
   * Protect one image (bound: usable as a ProtectFn as is).
   * @throws ServiceError, ServiceUnavailable, ProtectTimeout
   */
  protect(data: Uint8Array, options?: ProtectOptions | ProtectOptionsInit,
    extra?: { contentType?: string }): Promise<ProtectResult>;
  /** Whether any endpoint answers `GET /readyz` with 200. */
  ready(): Promise<boolean>;
}

export const REPORT_HEADER: "X-Grasp-Report";

// ---------------------------------------------------------------- the policy

export interface HostPattern {
  readonly text: string;
  readonly anyHost: boolean;
  matches(host: string): boolean;
}

export interface PathPattern {
  readonly text: string;
  matches(path: string): boolean;
}

export interface SitePipeline {
  readonly jpegQuality: [number, number] | null;
  readonly maxSide: number | null;
  readonly blurSigma: number | null;
}

/** One site's rule (see grasp_sdk/policy.yaml for each field). */
export class SiteRule {
  readonly name: string;
  readonly enabled: boolean;
  readonly hosts: readonly HostPattern[];
  readonly paths: readonly PathPattern[];
  readonly methods: ReadonlySet<string>;
  readonly formats: ReadonlySet<WireFormat>;
  readonly fields: readonly string[];
  readonly preset: Preset;
  readonly sizeMode: SizeMode;
  readonly onNoFace: OnNoFace;
  readonly onFailure: OnFailure;
  readonly sitePipeline: SitePipeline | null;
  readonly maxBytes: number;
  readonly lengthHeaders: readonly string[];
  readonly signed: boolean;
  /** Whether a request to `host` + `path` (no query) with `method` is this site's. */
  matches(method: string, host: string, path: string): boolean;
  /** The options for this site's images; `exactSize` forces `sizeMode: "exact"`. */
  options(overrides?: { exactSize?: boolean; preset?: Preset }): ProtectOptions;
}

/** The ordered site rules of one compiled policy: the first enabled match wins. */
export class Policy {
  constructor(sites: SiteRule[], source?: string);
  readonly sites: readonly SiteRule[];
  readonly source: string;
  /** The first enabled rule matching `method` and `url` (host any case, path as is), or null. */
  match(method: string, url: string): SiteRule | null;
  /** The rule named `name`, enabled or not, or null. */
  get(name: string): SiteRule | null;
}

/**
 * Load the JSON that `grasp-guard policy compile` writes (the document or its text).
 * @throws PolicyError naming the source, the site and the field.
 */
export function loadPolicy(doc: object | string, options?: { source?: string }): Policy;

// ---------------------------------------------------------------- one file

export interface ProtectFileOptions {
  /** The service's URL(s), unless `protect` is given. */
  service?: string | string[];
  token?: string;
  fetch?: typeof fetch;
  /** Protects one image instead of a client of `service`. */
  protect?: ProtectFn;
  /** With `site`: the site's options and on_failure. */
  policy?: Policy;
  /** The site the photo goes to (sent to the service as `site`). */
  site?: string;
  preset?: Preset;
  /** Without a policy. */
  sizeMode?: SizeMode;
  /** Without a policy. */
  onNoFace?: OnNoFace;
  /** Default: the site's, else `pass`. */
  onFailure?: OnFailure;
}

export interface FileOutcome<F extends Blob = File> {
  /** The protected copy (same name, type and date), or the original. */
  file: F;
  protected: boolean;
  /** What was done, or why the original is returned. */
  reason: string;
  site: string | null;
  report: ProtectResult["report"] | null;
  /** The failure behind an original returned under `pass`. */
  error: Error | null;
}

/**
 * Protect one photo. Not an image, no face: the original with the reason. A failure: the
 * original with the reason (`pass`), or UploadBlockedError (`block`).
 */
export function protectFile<F extends Blob>(file: F, options: ProtectFileOptions): Promise<FileOutcome<F>>;

// ---------------------------------------------------------------- the upload hooks

export interface ImageReport {
  location: string;
  mediaType: string;
  originalBytes: number;
  protectedBytes: number;
  report: ProtectResult["report"];
}

/** The outcome of `rewriteUpload`. */
export interface UploadRewrite {
  headers: [string, string][];
  body: Uint8Array;
  changed: boolean;
  images: ImageReport[];
  reason: string;
  site: string | null;
}

/**
 * The byte-level hook, as grasp_sdk's `rewrite_upload`: the images of one request body
 * (multipart, raw, base64 in JSON or forms) protected per the policy, or the reason not.
 * Checksum headers (Content-MD5, x-amz-checksum-*, Content-Digest...) are not recomputed:
 * a request carrying one is left untouched (on a `block` site, refused if it carries an image).
 * @throws RewriteError an image could not be protected; apply `error.onFailure`.
 * @throws UnprotectableUpload on a `block` site, the body carries an image it cannot rewrite.
 */
export function rewriteUpload(method: string, url: string, headers: HeadersInit | [string, string][],
  body: Uint8Array, policy: Policy, protect: ProtectFn): Promise<UploadRewrite>;

/** `rewriteUpload` for a request already matched to `rule`. */
export function rewriteForSite(rule: SiteRule, url: string, headers: HeadersInit | [string, string][],
  body: Uint8Array, protect: ProtectFn): Promise<UploadRewrite>;

export interface FormDataRewrite {
  /** A new FormData with protected photos, or the original. */
  formData: FormData;
  changed: boolean;
  images: ImageReport[];
  reason: string;
}

/**
 * Protect the image entries (files by their bytes, base64 text) of a FormData going to
 * `site`; the other entries and the order kept. `headers` and `url`, the request's, are read
 * for a digest of an image stated beside it (the form is then left alone).
 * @throws RewriteError an image could not be protected; apply `error.onFailure`.
 */
export function protectFormData(
  formData: FormData,
  context: { site: SiteRule; protect: ProtectFn; headers?: HeadersInit | [string, string][]; url?: string },
): Promise<FormDataRewrite>;

/** What the request-level hooks need. */
export interface GuardOptions {
  policy: Policy;
  /** Protects one image; else a client of `service` is made. */
  protect?: ProtectFn;
  service?: string | string[];
  token?: string;
  /** The fetch the service client uses: the original, never the wrapped one. */
  fetch?: typeof fetch;
  /** Resolves relative request URLs (default: `document.baseURI`, else `location.href`). */
  baseURL?: string;
  /** Told what happened to each request a policy site matched (for notices). */
  onOutcome?: (outcome: UploadOutcome) => void;
}

/** What happened to one request. */
export interface UploadOutcome {
  method: string;
  url: string;
  site: string | null;
  /** Whether the body went out protected. */
  changed: boolean;
  reason: string;
  images: ImageReport[];
  /** The failure behind an original sent under `pass`, or behind a refusal. */
  error: Error | null;
  /** Whether the request was refused (`on_failure: block`). */
  blocked: boolean;
}

/**
 * Protect the photos of one request described as fetch takes it; `init` is not modified.
 * Reads FormData, URLSearchParams, strings, Blobs and buffers; a stream is left alone.
 * @returns the outcome and the `init` to send (new when changed).
 * @throws UploadBlockedError protection failed and the site's on_failure is `block`.
 */
export function protectRequestBody(url: string | URL, init: RequestInit, options: GuardOptions):
  Promise<UploadOutcome & { init: RequestInit }>;

/**
 * A fetch whose matching uploads go out protected (or, on failure: the original under
 * `pass`; a rejection with UploadBlockedError, nothing sent, under `block`).
 */
export function wrapFetch(fetchFn: typeof fetch, options: GuardOptions): typeof fetch;

/**
 * Patch `XHR.prototype` so that matching uploads go out protected; headers are held until
 * `send`. Under `block` a failed request sends nothing and ends as a failed one (readyState 4, `readystatechange`, `error`, `loadend`); `abort()` during protection ends it as aborted, unsent.
 * @returns a function that undoes the patch.
 */
export function patchXMLHttpRequest(XHR: { prototype: XMLHttpRequest }, options: GuardOptions): () => void;

// ---------------------------------------------------------------- building blocks

/** The image media type of `data` from its magic bytes (JPEG, PNG, GIF, WebP, HEIC/HEIF, AVIF). */
export function imageType(data: Uint8Array): string | null;
/** Whether `data` is a whole image of `mediaType` rather than a piece of one. */
export function isComplete(data: Uint8Array, mediaType: string): boolean;
/**
 * Whether `body` holds an image anywhere: raw, or base64 (standard, URL-safe, percent-encoded,
 * JSON-escaped), or its bytes written as text a server reads back (percent-encoded, UTF-16/32
 * text, a binary string, hex, a typed array as `JSON.stringify` writes it, JSON in a JSON string).
 */
export function carriesImage(body: Uint8Array): boolean;

/** One image inside a body, and the edits that put a replacement in its place. */
export interface ImageSlot {
  location: string;
  data: Uint8Array;
  mediaType: string;
  edits(image: Uint8Array): { start: number; end: number; data: Uint8Array }[];
}

/** How one image was written as base64 text, to write its replacement the same way. */
export class Base64Text {
  readonly prefix: string;
  readonly urlsafe: boolean;
  readonly padded: boolean;
  readonly lineLength: number;
  readonly lineSep: string;
  readonly trailingSep: boolean;
  encode(data: Uint8Array): string;
}
export function decodeImageText(text: string): { style: Base64Text; data: Uint8Array } | null;
/** @throws MalformedBody (an Error) when the body is not JSON. */
export function findJsonImages(body: Uint8Array, fields?: readonly string[]): ImageSlot[];
export function findFormImages(body: Uint8Array, fields?: readonly string[]): ImageSlot[];

export namespace multipart {
  interface Part {
    headerStart: number;
    bodyStart: number;
    bodyEnd: number;
    headers: Record<string, string>;
    name: string | null;
    filename: string | null;
  }
  function headerParams(value: string): Record<string, string>;
  function boundaryOf(contentType: string): Uint8Array;
  function parse(body: Uint8Array, boundary: Uint8Array): Part[];
  function findImages(body: Uint8Array, contentType: string, fields?: readonly string[]): ImageSlot[];
}
