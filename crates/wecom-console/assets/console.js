// Keyboard navigation for the review console; the pages work without it.
//   /        focus the search box          j / k   next / previous message
//   n / p    older / newer page            Enter   open the focused message
//   g c      conversations                 ?       this help
(function () {
  "use strict";
  function typing(e) {
    var t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }
  function messages() { return Array.prototype.slice.call(document.querySelectorAll("article.msg")); }
  function move(step) {
    var list = messages();
    if (!list.length) return;
    var i = list.indexOf(document.activeElement);
    var next = list[Math.max(0, Math.min(list.length - 1, i < 0 ? 0 : i + step))];
    next.focus();
    next.scrollIntoView({ block: "nearest" });
  }
  function follow(rel) {
    var a = document.querySelector('nav.pager a[rel="' + rel + '"]');
    if (a) window.location.href = a.href;
  }
  function help() {
    var h = document.getElementById("help");
    if (!h) {
      h = document.createElement("div");
      h.id = "help";
      h.textContent = "/ search · j/k next/previous message · Enter open · n/p older/newer page · g c conversations · Esc close";
      document.body.appendChild(h);
    } else {
      h.hidden = !h.hidden;
    }
  }
  var pendingG = false;
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") {
      if (typing(e)) e.target.blur();
      var h = document.getElementById("help");
      if (h) h.hidden = true;
      return;
    }
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (pendingG) {
      pendingG = false;
      if (e.key === "c") { window.location.href = "/conversations"; e.preventDefault(); }
      return;
    }
    switch (e.key) {
      case "/": var q = document.getElementById("q"); if (q) { q.focus(); q.select(); e.preventDefault(); } break;
      case "j": move(1); e.preventDefault(); break;
      case "k": move(-1); e.preventDefault(); break;
      case "n": follow("next"); break;
      case "p": follow("prev"); break;
      case "g": pendingG = true; break;
      case "?": help(); break;
      case "Enter":
        if (document.activeElement && document.activeElement.matches("article.msg")) {
          var link = document.activeElement.querySelector("a.permalink");
          if (link) window.location.href = link.href;
        }
        break;
    }
  });
  // A picture or voice message whose object is not stored (yet) says so instead of a broken image.
  document.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t.tagName === "IMG" && t.classList.contains("thumb")) {
      t.classList.add("broken");
      var note = document.createElement("span");
      note.className = "media-missing";
      note.textContent = "图片不可用 picture not available (not stored yet, or not decodable)";
      t.parentNode.insertBefore(note, t);
    }
  }, true);
})();
