// The login form: POST /auth/login opens a cookie session (HttpOnly) and sets the
// CSRF cookie that api.js echoes on unsafe requests.

import * as api from "../api.js";
import { clear, h } from "../ui.js";

export function render(app, loggedIn) {
  const message = h("div", { class: "notice error", role: "alert", hidden: true });
  const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true,
    autofocus: true, maxlength: 256 });
  const password = h("input", { id: "password", name: "password", type: "password",
    autocomplete: "current-password", required: true, maxlength: 256 });
  const submit = h("button", { class: "button primary", type: "submit" }, "Log in");
  const form = h("form", { class: "login card", "aria-labelledby": "login-title" },
    h("div", { class: "brand big" }, h("span", { class: "logo", "aria-hidden": "true" }), "Face API"),
    h("h1", { id: "login-title" }, "Admin console"),
    message,
    h("label", { for: "username" }, "Username"), username,
    h("label", { for: "password" }, "Password"), password,
    submit,
    h("p", { class: "muted small" },
      "The embedded server prints the login at its first start and keeps the password in ",
      h("code", {}, ".run/admin-password"), "."));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    message.hidden = true;
    try {
      await api.login(username.value, password.value);
      await loggedIn(username.value);
    } catch (error) {
      message.textContent = error.status === 401 ? "Wrong username or password." : error.message;
      message.hidden = false;
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  document.title = "Log in · Face API admin";
  clear(app, h("main", { id: "main", class: "center" }, form));
  username.focus();
}
