// filetier console: uploads with a progress bar each (file picker or drag and drop), and
// "Copy link" without leaving the page. Everything else works without script (the link
// forms then post and a page shows the link). Loaded from /static only (strict CSP).
(function () {
  "use strict";

  var PARALLEL = 3;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function errorText(xhr) {
    // The API answers {"error": {"type", "message"}}; say what was refused and why.
    var kinds = {
      FileTooLargeError: "Too large",
      QuotaExceededError: "Quota full",
      TypeNotAllowedError: "Type not allowed",
      InsufficientSpaceError: "Server disk full",
      Unauthorized: "Signed out",
      Signedout: "Signed out",
      Requestrefused: "Refused",
    };
    try {
      var body = JSON.parse(xhr.responseText);
      var label = kinds[body.error.type] || "Refused";
      return label + ": " + body.error.message;
    } catch (e) {
      return "Upload failed (HTTP " + xhr.status + ")";
    }
  }

  // After uploads, show the list as the server now has it: this page fetched again, and
  // its listing and count swapped in (the upload statuses above stay where they are).
  function refreshListing() {
    var chosen = document.getElementById("list-link-lifetime");
    var lifetime = chosen ? chosen.value : null; // kept across the swap
    var xhr = new XMLHttpRequest();
    xhr.open("GET", window.location.href);
    xhr.responseType = "document";
    xhr.addEventListener("load", function () {
      var fresh = xhr.response;
      if (xhr.status !== 200 || !fresh) {
        return;
      }
      ["listing", "file-count"].forEach(function (id) {
        var mine = document.getElementById(id);
        var theirs = fresh.getElementById(id);
        if (mine && theirs) {
          mine.replaceWith(document.importNode(theirs, true));
        }
      });
      if (lifetime && document.getElementById("list-link-lifetime")) {
        document.getElementById("list-link-lifetime").value = lifetime;
      }
    });
    xhr.send();
  }

  function setup() {
    var input = document.getElementById("file-input");
    var zone = document.getElementById("dropzone");
    var list = document.getElementById("uploads");
    if (!input || !zone || !list) {
      return;
    }
    var queue = [];
    var running = 0;
    var succeeded = 0;

    function row(file) {
      var li = document.createElement("li");
      var name = document.createElement("span");
      name.className = "up-name";
      name.textContent = file.name;
      var bar = document.createElement("progress");
      bar.max = 100;
      bar.value = 0;
      bar.setAttribute("aria-label", "Upload progress of " + file.name);
      var status = document.createElement("span");
      status.className = "up-status";
      status.textContent = "Waiting";
      li.appendChild(name);
      li.appendChild(bar);
      li.appendChild(status);
      list.appendChild(li);
      return { li: li, bar: bar, status: status };
    }

    function finish(item, ok, text) {
      item.ui.li.classList.add(ok ? "done" : "failed");
      item.ui.status.textContent = text;
      if (ok) {
        item.ui.bar.value = 100;
        succeeded += 1;
      }
      running -= 1;
      if (succeeded > 0 && running === 0 && queue.length === 0) {
        succeeded = 0;
        refreshListing();
      }
      next();
    }

    function send(item) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/files/upload?filename=" + encodeURIComponent(item.file.name));
      xhr.setRequestHeader("X-CSRF-Token", csrfToken());
      xhr.setRequestHeader("Content-Type", item.file.type || "application/octet-stream");
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) {
          var percent = Math.round((event.loaded / event.total) * 100);
          item.ui.bar.value = percent;
          item.ui.status.textContent = "Uploading " + percent + "%";
        }
      });
      xhr.addEventListener("load", function () {
        if (xhr.status === 201) {
          finish(item, true, "Uploaded");
        } else {
          finish(item, false, errorText(xhr));
        }
      });
      xhr.addEventListener("error", function () {
        finish(item, false, "Upload failed: the connection was lost");
      });
      item.ui.status.textContent = "Uploading 0%";
      xhr.send(item.file);
    }

    function next() {
      while (running < PARALLEL && queue.length > 0) {
        running += 1;
        send(queue.shift());
      }
    }

    function add(files) {
      for (var i = 0; i < files.length; i += 1) {
        queue.push({ file: files[i], ui: row(files[i]) });
      }
      next();
    }

    input.addEventListener("change", function () {
      add(input.files);
      input.value = "";
    });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.remove("dragging");
      });
    });
    zone.addEventListener("drop", function (event) {
      if (event.dataTransfer && event.dataTransfer.files.length) {
        add(event.dataTransfer.files);
      }
    });
  }

  // -- "Copy link" ------------------------------------------------------------------------

  // Where a link's result goes: a row under the file's row in the list, or the panel
  // under the file page's heading. One result at a time.
  function linkPanel(form) {
    var old = document.querySelector("tr.link-row");
    if (old) {
      old.remove();
    }
    var row = form.closest("tr");
    if (!row) {
      var panel = document.getElementById("link-panel");
      panel.textContent = "";
      return panel;
    }
    var extra = document.createElement("tr");
    extra.className = "link-row";
    var cell = document.createElement("td");
    cell.colSpan = row.cells.length;
    extra.appendChild(cell);
    row.after(extra);
    return cell;
  }

  function copyLink(result) {
    var input = result.querySelector(".link-url");
    var status = result.querySelector(".link-status");
    input.focus();
    input.select();
    input.scrollLeft = 0; // show where the link starts, still all selected
    function unavailable() {
      // Refused outside a secure context (plain http to a remote host), in headless
      // browsers and in unfocused pages: the link is selected in its field instead.
      status.className = "link-status manual";
      status.textContent =
        "Copy the selected link with Ctrl+C (⌘C on a Mac): this browser did not let the " +
        "page use the clipboard.";
    }
    if (!navigator.clipboard || !window.isSecureContext) {
      unavailable();
      return;
    }
    navigator.clipboard.writeText(input.value).then(function () {
      status.className = "link-status copied";
      status.textContent = "Link copied to the clipboard.";
    }, unavailable);
  }

  function makeLink(form, button) {
    if (form.getAttribute("aria-busy") === "true") {
      return;
    }
    var template = document.getElementById("link-template");
    var name = (button && button.getAttribute("data-name")) || "this file";
    var body = new URLSearchParams(new FormData(form));
    var chosen = document.getElementById("list-link-lifetime");
    if (chosen && form.closest("tr")) {
      body.set("expires_in", chosen.value);
    }
    var holder = linkPanel(form);
    holder.appendChild(document.importNode(template.content, true));
    var result = holder.querySelector(".link-result");
    var label = result.querySelector(".link-label");
    var input = result.querySelector(".link-url");
    var status = result.querySelector(".link-status");
    var line = result.querySelector(".link-line");
    var note = result.querySelector(".link-note");
    input.id = "link-url";
    label.htmlFor = "link-url";
    label.textContent = "Link to " + name;
    line.hidden = true;
    note.hidden = true;
    status.textContent = "Making a link…";
    result.querySelector(".link-copy").addEventListener("click", function () {
      copyLink(result);
    });
    result.querySelector(".link-close").addEventListener("click", function () {
      var row = holder.closest("tr.link-row");
      if (row) {
        row.remove();
      } else {
        holder.textContent = "";
      }
      if (button) {
        button.focus();
      }
    });
    form.setAttribute("aria-busy", "true");

    function failed(text) {
      result.classList.add("failed");
      status.className = "link-status failed";
      status.textContent = text;
      label.hidden = true;
    }

    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
      body: body,
    })
      .then(function (response) {
        return response.json().then(
          function (answer) {
            return { ok: response.ok, status: response.status, answer: answer };
          },
          function () {
            return { ok: false, status: response.status, answer: null };
          }
        );
      })
      .then(function (reply) {
        if (!reply.ok) {
          var why =
            reply.answer && reply.answer.error
              ? reply.answer.error.message
              : "the server answered HTTP " + reply.status;
          failed("No link was made: " + why);
          return;
        }
        input.value = reply.answer.url;
        result.querySelector(".link-expires").textContent = reply.answer.expires;
        line.hidden = false;
        note.hidden = false;
        copyLink(result);
      })
      .catch(function () {
        failed("No link was made: the connection was lost.");
      })
      .finally(function () {
        form.removeAttribute("aria-busy");
      });
  }

  function setupLinks() {
    document.documentElement.classList.add("js");
    // Delegated, so rows swapped in after an upload work too.
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (
        form instanceof HTMLFormElement &&
        form.classList.contains("link-form") &&
        document.getElementById("link-template")
      ) {
        event.preventDefault();
        makeLink(form, event.submitter || form.querySelector("button[type=submit]"));
      }
    });
    var shown = document.querySelector("input.link-url[data-select]");
    if (shown) {
      shown.focus();
      shown.select();
      shown.scrollLeft = 0;
    }
  }

  function start() {
    setup();
    setupLinks();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
