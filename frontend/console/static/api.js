// Every call the console makes goes through request(): the session cookie rides
// along by itself; unsafe methods echo the CSRF cookie in X-CSRF-Token, as the
// admin API demands of cookie sessions (docs/admin.md).

export const ADMIN = "/api/v1/admin";
const CSRF_COOKIE = "face_api_csrf";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

let unauthorized = () => {};

/** What to do when a call answers 401 (the session expired or was revoked). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(value.join("="));
  }
  return "";
}

async function detailOf(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail.map((p) => `${(p.loc || []).slice(1).join(".") || "request"}: ${p.msg}`).join("; ");
    }
  } catch {
    // not JSON: fall through to the status text
  }
  return `${response.status} ${response.statusText || "error"}`;
}

/** Call the API; resolves to the JSON body (null for 204), rejects with ApiError. */
export async function request(method, path, { json, form, query } = {}) {
  const url = new URL(path.startsWith("/") ? path : `${ADMIN}/${path}`, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "The server cannot be reached. Is the face API running?");
  }
  if (!response.ok) {
    const error = new ApiError(response.status, await detailOf(response));
    if (response.status === 401 && !path.endsWith("auth/login")) unauthorized(error);
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

export const get = (path, query) => request("GET", path, { query });

export const session = () => get("auth/session");
export const login = (username, password) => request("POST", "auth/login", { json: { username, password } });
export const logout = () => request("POST", "auth/logout");

/** Image and job links the browser follows itself (302 to a signed URL). */
export const imageDownload = (id) => `${ADMIN}/images/${encodeURIComponent(id)}/download`;
export const jobDownload = (id) => `${ADMIN}/jobs/${encodeURIComponent(id)}/download`;
export const imageThumbnail = (id, size = 320) => `${ADMIN}/images/${encodeURIComponent(id)}/thumbnail?size=${size}`;
export const jobThumbnail = (id, size = 320) => `${ADMIN}/jobs/${encodeURIComponent(id)}/thumbnail?size=${size}`;
