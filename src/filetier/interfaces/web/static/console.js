// filetier console: uploads with a progress bar each (file picker or drag and drop).
// Everything else works without script. Loaded from /static only (strict CSP).
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

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();
