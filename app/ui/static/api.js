// Calls to the API. A pasted token travels only in the X-Admin-Token header, never in a
// URL; a user the proxy signed in sends none (the proxy vouches for each request). Every
// answer's Date header helps the page's clock (clock.js).

import { observeAnswer } from "./clock.js";

export class ApiError extends Error {
  constructor(status, message, payload = null) {
    super(message);
    this.status = status;
    this.payload = payload;
  }
}

export class Api {
  /** @param {string} root the API's root, e.g. "/ops" */
  constructor(root) {
    this.root = root;
    this.token = null; // the pasted token; none when the proxy signed the user in
    this.signedIn = false;
    // Called when the server refuses the token or the proxy's user (401) while signed in.
    this.onUnauthorized = () => {};
  }

  /** The server's answer to `method path`; an ApiError when it is not a success. */
  async send(method, path, body, accept = "application/json") {
    const headers = { Accept: accept };
    if (this.token) headers["X-Admin-Token"] = this.token;
    const init = { method, headers, cache: "no-store", credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    const sentAt = Date.now();
    try {
      response = await fetch(this.root + path, init);
    } catch {
      throw new ApiError(0, "Could not reach the server. Check the connection and try again.");
    }
    observeAnswer(response.headers.get("Date"), sentAt);
    if (!response.ok) {
      let payload = null;
      try {
        payload = await response.json();
      } catch {
        payload = null; // a proxy's error page is not JSON
      }
      const message = payload && typeof payload.error === "string"
        ? payload.error : `The server answered ${response.status} ${response.statusText}`.trim();
      const error = new ApiError(response.status, message, payload);
      if (response.status === 401 && this.signedIn) this.onUnauthorized(error);
      throw error;
    }
    return response;
  }

  async request(method, path, body) {
    const response = await this.send(method, path, body);
    try {
      return await response.json();
    } catch {
      return null;
    }
  }

  /** A GET's body as a Blob, e.g. a file to save. */
  async blob(path, accept = "text/plain") {
    const response = await this.send("GET", path, undefined, accept);
    return response.blob();
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body) {
    return this.request("POST", path, body ?? {});
  }
}
