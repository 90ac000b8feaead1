/*
 * "Add API key": offer only the scopes of the chosen API.
 *
 * Every scope checkbox carries its API's id (data-api). When the API changes, the scopes of
 * other APIs are hidden and unchecked, so they are never submitted. This is a convenience:
 * the server refuses a scope of another API whatever the browser sends.
 */
"use strict";
(function () {
    function setUp() {
        const api = document.getElementById("id_api");
        const container = document.getElementById("id_scopes");
        if (!api || !container) {
            return;
        }
        const boxes = Array.from(container.querySelectorAll("input[type=checkbox][data-api]"));
        const hint = document.createElement("p");
        hint.className = "help apikeys-scopes-hint";
        hint.setAttribute("aria-live", "polite");
        container.after(hint);

        function sync() {
            let shown = 0;
            for (const box of boxes) {
                const row = box.closest("label") ? box.closest("label").parentElement : box.parentElement;
                const belongs = api.value !== "" && box.dataset.api === api.value;
                row.hidden = !belongs;
                if (!belongs) {
                    box.checked = false;
                } else {
                    shown += 1;
                }
            }
            if (api.value === "") {
                hint.textContent = "Choose an API to see its scopes.";
            } else if (shown === 0) {
                hint.textContent = "This API has no scopes: the key will carry none.";
            } else {
                hint.textContent = "";
            }
        }

        api.addEventListener("change", sync);
        sync();
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", setUp);
    } else {
        setUp();
    }
})();
