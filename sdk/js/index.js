/**
 * GRASP Guard JavaScript SDK: protect face photos in a page's uploads, before they leave.
 *
 * The service client (GraspClient), the per-site policy compiled to JSON by
 * `grasp-guard policy compile` (loadPolicy), one-file protection (protectFile), and the
 * upload hooks: the byte-level rewriteUpload (multipart, raw, base64 in JSON or forms, as
 * grasp_sdk's hook does), protectFormData, protectRequestBody, wrapFetch and
 * patchXMLHttpRequest. No dependencies; types in index.d.ts.
 */

export { Base64Text, decodeImageText, findFormImages, findJsonImages } from "./src/base64_fields.js";
export { GraspClient, REPORT_HEADER } from "./src/client.js";
export {
  GraspSDKError, PolicyError, ProtectTimeout, RewriteError, ServiceError, ServiceUnavailable,
  UnprotectableUpload, UploadBlockedError,
} from "./src/errors.js";
export { wrapFetch } from "./src/fetch.js";
export { protectFormData } from "./src/form_data.js";
export { rewriteForSite, rewriteUpload } from "./src/hook.js";
export * as multipart from "./src/multipart.js";
export { ProtectOptions } from "./src/options.js";
export { Policy, SiteRule, loadPolicy } from "./src/policy.js";
export { protectFile } from "./src/protect_file.js";
export { protectRequestBody } from "./src/request.js";
export { carriesImage, imageType, isComplete } from "./src/sniff.js";
export { patchXMLHttpRequest } from "./src/xhr.js";
