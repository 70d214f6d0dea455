// A minimal SVG writer (rects, lines, polylines, text) and the colour maps the figures use; no
// dependencies. Shared by `moeforge analyze` (standalone .svg files) and `moeforge report` (SVG
// inlined into one HTML page), so both draw with the same look.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace moeforge::report {

class SvgCanvas {
 public:
  SvgCanvas(double width, double height);
  void rect(double x, double y, double w, double h, const std::string& fill, const std::string& title = "");
  // dash: SVG stroke-dasharray ("" = solid)
  void line(double x1, double y1, double x2, double y2, const std::string& stroke = "#444", double width = 1,
            const std::string& dash = "");
  // An open path through `points`; fewer than two points draw nothing.
  void polyline(const std::vector<std::pair<double, double>>& points, const std::string& stroke, double width = 1.5,
                double opacity = 1.0);
  // anchor: start | middle | end; rotate: degrees about (x, y)
  void text(double x, double y, const std::string& content, double size = 11, const std::string& anchor = "start",
            double rotate = 0, const std::string& fill = "#222");
  std::string str() const;      // a complete standalone document (XML prolog + <svg>)
  std::string element() const;  // just the <svg> element, for inlining into HTML

 private:
  double width_, height_;
  std::string body_;
};

// Viridis-like sequential colour for t in [0, 1] (clamped), as "#rrggbb".
std::string sequential_color(double t);
// One of 10 distinguishable categorical colours.
std::string category_color(size_t index);
// Escapes text for XML/HTML content and attribute values (& < > " ').
std::string xml_escape(const std::string& text);

}  // namespace moeforge::report
